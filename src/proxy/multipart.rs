//! `multipart/form-data` uploads for `/v1/audio/transcriptions`: read the small fields the
//! gateway needs (model, stream) and check the file is there. The body is forwarded as received;
//! only when the upstream names the model differently is the form re-assembled, with every other
//! part's headers and bytes unchanged.

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::stream;
use http::HeaderValue;

use crate::error::GatewayError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranscriptionForm {
    pub model: String,
    pub stream: bool,
    pub boundary: String,
}

fn parts_of(body: Bytes, boundary: &str) -> multer::Multipart<'static> {
    let once = stream::iter([Ok::<Bytes, std::io::Error>(body)]);
    multer::Multipart::new(once, boundary.to_string())
}

fn malformed(e: multer::Error) -> GatewayError {
    GatewayError::bad_request(format!("Malformed multipart/form-data body: {e}"))
}

pub fn boundary(content_type: Option<&HeaderValue>) -> Result<String, GatewayError> {
    let content_type = content_type.and_then(|v| v.to_str().ok()).unwrap_or("");
    multer::parse_boundary(content_type).map_err(|_| {
        GatewayError::bad_request(
            "This endpoint expects a multipart/form-data body with a boundary (fields: file, model, ...).",
        )
    })
}

pub async fn inspect(body: Bytes, boundary: String) -> Result<TranscriptionForm, GatewayError> {
    let mut parts = parts_of(body, &boundary);
    let mut model = None;
    let mut stream = false;
    let mut has_file = false;
    while let Some(mut field) = parts.next_field().await.map_err(malformed)? {
        match field.name() {
            // Two models: the gateway would route (and check, and price) by one while the
            // upstream might read the other. Refused, as duplicate JSON keys are.
            Some("model") if model.is_some() => {
                return Err(GatewayError::bad_request(
                    "The form has more than one 'model' field; send one.",
                )
                .with_param("model"));
            }
            Some("model") => model = Some(field.text().await.map_err(malformed)?),
            Some("stream") => {
                stream = field.text().await.map_err(malformed)?.trim() == "true";
            }
            Some("file") => {
                has_file = true;
                // Walk past the file's bytes without keeping them.
                while field.chunk().await.map_err(malformed)?.is_some() {}
            }
            _ => while field.chunk().await.map_err(malformed)?.is_some() {},
        }
    }
    if !has_file {
        return Err(
            GatewayError::bad_request("Missing required parameter: 'file'.").with_param("file"),
        );
    }
    let model = model
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty());
    let model = model.ok_or_else(|| {
        GatewayError::bad_request("You must provide a model parameter.").with_param("model")
    })?;
    Ok(TranscriptionForm {
        model,
        stream,
        boundary,
    })
}

/// The same form with the `model` field's value swapped.
pub async fn replace_model(
    body: Bytes,
    boundary: &str,
    model: &str,
) -> Result<Bytes, GatewayError> {
    let mut out = BytesMut::with_capacity(body.len() + model.len());
    let mut parts = parts_of(body, boundary);
    while let Some(mut field) = parts.next_field().await.map_err(malformed)? {
        out.put_slice(b"--");
        out.put_slice(boundary.as_bytes());
        out.put_slice(b"\r\n");
        for (name, value) in field.headers() {
            out.put_slice(name.as_str().as_bytes());
            out.put_slice(b": ");
            out.put_slice(value.as_bytes());
            out.put_slice(b"\r\n");
        }
        out.put_slice(b"\r\n");
        if field.name() == Some("model") {
            out.put_slice(model.as_bytes());
        } else {
            while let Some(chunk) = field.chunk().await.map_err(malformed)? {
                out.put_slice(&chunk);
            }
        }
        out.put_slice(b"\r\n");
    }
    out.put_slice(b"--");
    out.put_slice(boundary.as_bytes());
    out.put_slice(b"--\r\n");
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(fields: &[(&str, Option<&str>, &[u8])]) -> Bytes {
        let mut out = Vec::new();
        for (name, filename, data) in fields {
            out.extend_from_slice(b"--XyZ\r\n");
            match filename {
                Some(f) => out.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: audio/mpeg\r\n\r\n").as_bytes(),
                ),
                None => out.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
                ),
            }
            out.extend_from_slice(data);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"--XyZ--\r\n");
        Bytes::from(out)
    }

    #[tokio::test]
    async fn reads_model_and_stream_and_requires_a_file() {
        let body = form(&[
            ("file", Some("a.mp3"), b"\x00\x01binary\r\n--not-a-boundary"),
            ("model", None, b"whisper-1"),
            ("stream", None, b"true"),
        ]);
        let parsed = inspect(body, "XyZ".into()).await.unwrap();
        assert_eq!(parsed.model, "whisper-1");
        assert!(parsed.stream);

        let no_file = form(&[("model", None, b"whisper-1")]);
        let err = inspect(no_file, "XyZ".into()).await.unwrap_err();
        assert_eq!(err.param.as_deref(), Some("file"));

        let no_model = form(&[("file", Some("a.mp3"), b"x")]);
        let err = inspect(no_model, "XyZ".into()).await.unwrap_err();
        assert_eq!(err.param.as_deref(), Some("model"));

        let two_models = form(&[
            ("model", None, b"cheap"),
            ("file", Some("a.mp3"), b"x"),
            ("model", None, b"dear"),
        ]);
        let err = inspect(two_models, "XyZ".into()).await.unwrap_err();
        assert_eq!(err.param.as_deref(), Some("model"));
        assert_eq!(err.status, http::StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn replacing_the_model_keeps_the_file_bytes() {
        let audio: &[u8] = b"\x00\xffRIFF\r\n--XyQ\r\nbytes";
        let body = form(&[("file", Some("a.wav"), audio), ("model", None, b"alias")]);
        let out = replace_model(body, "XyZ", "real-model").await.unwrap();
        let parsed = inspect(out.clone(), "XyZ".into()).await.unwrap();
        assert_eq!(parsed.model, "real-model");
        let mut parts = parts_of(out, "XyZ");
        let file = parts.next_field().await.unwrap().unwrap();
        assert_eq!(file.file_name(), Some("a.wav"));
        assert_eq!(&file.bytes().await.unwrap()[..], audio);
    }
}
