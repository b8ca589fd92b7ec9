//! The transcription upload reader: any body, with a boundary taken from the input, gives a
//! form or a 400, never a panic.
#![no_main]

use std::sync::OnceLock;

use gateway::proxy::multipart;
use libfuzzer_sys::fuzz_target;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    // A boundary of the input's first bytes (up to the first newline), else a fixed one.
    let (boundary, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) if i > 0 && i <= 70 => (&data[..i], &data[i + 1..]),
        _ => (&b"fuzzboundary"[..], data),
    };
    let Ok(boundary) = std::str::from_utf8(boundary) else {
        return;
    };
    let body = bytes::Bytes::copy_from_slice(body);
    let _ = runtime().block_on(multipart::inspect(body, boundary.to_string()));
});
