//! better-auth's signed session cookie: `{prefix}.session_token` (or `__Secure-{prefix}.session_token`
//! over HTTPS) holding the percent-encoded `"{token}.{signature}"`, where the signature is the
//! padded standard base64 of HMAC-SHA256(secret, token).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::Secret;

type HmacSha256 = Hmac<Sha256>;

pub struct CookieVerifier {
    secret: Secret,
    names: [String; 2],
}

impl CookieVerifier {
    pub fn new(secret: Secret, cookie_prefix: &str) -> Self {
        Self {
            secret,
            names: [
                format!("{cookie_prefix}.session_token"),
                format!("__Secure-{cookie_prefix}.session_token"),
            ],
        }
    }

    /// The session token from a request's Cookie header(s), if a session cookie is present and its signature is valid.
    pub fn token_from_headers(&self, headers: &http::HeaderMap) -> Option<String> {
        headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .filter(|(name, _)| self.names.iter().any(|n| n == name.trim()))
            // A stale or foreign cookie of the same name must not hide a valid one.
            .find_map(|(_, value)| self.verify(value.trim()))
    }

    /// `"{token}.{signature}"`, not yet percent-encoded.
    pub fn sign(&self, token: &str) -> String {
        let mut mac = self.mac();
        mac.update(token.as_bytes());
        let signature = STANDARD.encode(mac.finalize().into_bytes());
        format!("{token}.{signature}")
    }

    fn verify(&self, raw: &str) -> Option<String> {
        let value = percent_encoding::percent_decode_str(raw)
            .decode_utf8()
            .ok()?;
        // The token may itself contain dots; base64 never does.
        let (token, signature) = value.rsplit_once('.')?;
        if token.is_empty() {
            return None;
        }
        let signature = STANDARD.decode(signature).ok()?;
        let mut mac = self.mac();
        mac.update(token.as_bytes());
        // Constant time, so the comparison leaks nothing about the expected signature.
        mac.verify_slice(&signature).ok()?;
        Some(token.to_owned())
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(self.secret.expose().as_bytes())
            .expect("HMAC accepts keys of any length")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{HeaderValue, COOKIE};
    use http::HeaderMap;

    const SECRET: &str = "better-auth-secret-123456789012345678";

    fn verifier() -> CookieVerifier {
        CookieVerifier::new(Secret::new(SECRET), "better-auth")
    }

    fn headers(cookies: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for cookie in cookies {
            map.append(COOKIE, HeaderValue::from_str(cookie).unwrap());
        }
        map
    }

    /// The signature computed independently of `sign`, as better-auth does.
    fn reference_signature(token: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(token.as_bytes());
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    }

    fn encode(value: &str) -> String {
        percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string()
    }

    #[test]
    fn sign_matches_an_independent_signature() {
        let signed = verifier().sign("tok123");
        assert_eq!(signed, format!("tok123.{}", reference_signature("tok123")));
        // Padded standard base64 of 32 bytes.
        assert_eq!(signed.len(), "tok123.".len() + 44);
        assert!(signed.ends_with('='));
    }

    #[test]
    fn accepts_a_valid_cookie() {
        let value = format!("abc.{}", reference_signature("abc"));
        let h = headers(&[&format!("better-auth.session_token={value}")]);
        assert_eq!(verifier().token_from_headers(&h).as_deref(), Some("abc"));
    }

    #[test]
    fn accepts_a_percent_encoded_value() {
        let value = encode(&verifier().sign("abc"));
        assert!(value.contains('%'), "{value}");
        let h = headers(&[&format!("better-auth.session_token={value}")]);
        assert_eq!(verifier().token_from_headers(&h).as_deref(), Some("abc"));
    }

    #[test]
    fn accepts_the_secure_prefixed_name() {
        let value = encode(&verifier().sign("abc"));
        let h = headers(&[&format!("__Secure-better-auth.session_token={value}")]);
        assert_eq!(verifier().token_from_headers(&h).as_deref(), Some("abc"));
    }

    #[test]
    fn honours_a_custom_prefix() {
        let v = CookieVerifier::new(Secret::new(SECRET), "myapp");
        let value = encode(&v.sign("abc"));
        let h = headers(&[&format!("myapp.session_token={value}")]);
        assert_eq!(v.token_from_headers(&h).as_deref(), Some("abc"));
        let h = headers(&[&format!("better-auth.session_token={value}")]);
        assert_eq!(v.token_from_headers(&h), None);
    }

    #[test]
    fn finds_the_cookie_among_others_and_across_headers() {
        let value = encode(&verifier().sign("abc"));
        let h = headers(&[
            "theme=dark; better-auth.session_data=xyz",
            &format!("a=1;  better-auth.session_token={value} ; b=2"),
        ]);
        assert_eq!(verifier().token_from_headers(&h).as_deref(), Some("abc"));
    }

    #[test]
    fn ignores_other_cookies() {
        let value = encode(&verifier().sign("abc"));
        let h = headers(&[&format!(
            "session_token={value}; better-auth.session_data={value}; x.better-auth.session_token={value}"
        )]);
        assert_eq!(verifier().token_from_headers(&h), None);
        assert_eq!(verifier().token_from_headers(&HeaderMap::new()), None);
    }

    #[test]
    fn rejects_a_tampered_token_or_signature() {
        let sig = reference_signature("abc");
        let h = headers(&[&format!("better-auth.session_token=abd.{sig}")]);
        assert_eq!(verifier().token_from_headers(&h), None);

        let mut bad = sig.clone().into_bytes();
        bad[0] = if bad[0] == b'A' { b'B' } else { b'A' };
        let bad = String::from_utf8(bad).unwrap();
        let h = headers(&[&format!("better-auth.session_token=abc.{}", encode(&bad))]);
        assert_eq!(verifier().token_from_headers(&h), None);

        // Signed with another secret.
        let other = CookieVerifier::new(Secret::new("another-secret"), "better-auth");
        let h = headers(&[&format!(
            "better-auth.session_token={}",
            encode(&other.sign("abc"))
        )]);
        assert_eq!(verifier().token_from_headers(&h), None);

        // Truncated signature.
        let h = headers(&[&format!("better-auth.session_token=abc.{}", &sig[..20])]);
        assert_eq!(verifier().token_from_headers(&h), None);
    }

    #[test]
    fn rejects_a_value_without_a_dot_or_token() {
        let h = headers(&["better-auth.session_token=abcdef"]);
        assert_eq!(verifier().token_from_headers(&h), None);
        let h = headers(&[&format!(
            "better-auth.session_token={}",
            encode(&format!(".{}", reference_signature("")))
        )]);
        assert_eq!(verifier().token_from_headers(&h), None);
    }

    #[test]
    fn a_valid_cookie_wins_over_a_stale_one() {
        let good = encode(&verifier().sign("fresh"));
        let h = headers(&[&format!(
            "better-auth.session_token=stale.AAAA; __Secure-better-auth.session_token={good}"
        )]);
        assert_eq!(verifier().token_from_headers(&h).as_deref(), Some("fresh"));
    }
}
