//! The SSE decoder reads translated providers' streams: the same events come out whatever
//! the chunking (the first byte picks where the input is cut), and nothing panics.
#![no_main]

use gateway::translate::sse::SseDecoder;
use libfuzzer_sys::fuzz_target;

fn events(chunks: &[&[u8]]) -> Result<Vec<(String, String)>, String> {
    let mut decoder = SseDecoder::default();
    let mut out = Vec::new();
    for chunk in chunks {
        decoder
            .feed(chunk, |event| {
                out.push((event.event.to_string(), event.data.to_string()));
                Ok(())
            })
            .map_err(|e| e.message.clone())?;
    }
    Ok(out)
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, body)) = data.split_first() else {
        return;
    };
    let cut = usize::from(cut).min(body.len());
    let whole = events(&[body]);
    let split = events(&[&body[..cut], &body[cut..]]);
    // Invalid UTF-8 may be refused at a different event when cut, but never accepted once and
    // refused the other time.
    if let (Ok(whole), Ok(split)) = (&whole, &split) {
        assert_eq!(whole, split);
    }
    assert_eq!(whole.is_ok(), split.is_ok());
});
