//! The /v1 JSON probe reads every chat and embeddings body: any bytes give an answer or a 400,
//! never a panic, and the spans it reports lie inside the body (they are spliced later).
#![no_main]

use gateway::plugins::Route;
use gateway::proxy::json_probe;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for route in [Route::ChatCompletions, Route::Embeddings] {
        let Ok(probed) = json_probe::probe(data, route) else {
            continue;
        };
        for span in [
            Some(probed.model_span.clone()),
            probed.stream_options_span.clone(),
        ]
        .into_iter()
        .flatten()
        {
            assert!(span.start <= span.end && span.end <= data.len(), "{span:?}");
        }
        // The edit the gateway makes (the upstream's model name) keeps the body splicable.
        let edited = json_probe::splice(
            data,
            vec![(
                probed.model_span.clone(),
                bytes::Bytes::from_static(b"\"m\""),
            )],
        );
        assert!(edited.len() + probed.model_span.len() == data.len() + 3);
    }
});
