//! A fake SMTP server for tests: accepts any mail over plain SMTP and hands over its DATA.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinHandle;

pub struct SmtpSink {
    pub port: u16,
    mails: Mutex<mpsc::UnboundedReceiver<String>>,
    server: JoinHandle<()>,
}

impl SmtpSink {
    /// Listens on 127.0.0.1 (port 0); neither STARTTLS nor AUTH is offered, so use `SmtpTls::None`.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = mpsc::unbounded_channel();
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, tx.clone()));
            }
        });
        Self {
            port,
            mails: Mutex::new(rx),
            server,
        }
    }

    /// The next mail whose raw DATA contains `needle` (a subject line, say), skipping others.
    pub async fn next_mail_with(&self, needle: &str) -> String {
        loop {
            let mail = self.next_mail().await;
            if mail.contains(needle) {
                return mail;
            }
        }
    }

    /// The next mail's raw DATA (headers and body, as sent, without the final "."), waiting up to 5 s.
    pub async fn next_mail(&self) -> String {
        let mut mails = self.mails.lock().await;
        match tokio::time::timeout(Duration::from_secs(5), mails.recv()).await {
            Ok(Some(mail)) => mail,
            Ok(None) => panic!("SMTP sink stopped"),
            Err(_) => panic!("no mail reached the SMTP sink within 5 s"),
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn serve(stream: TcpStream, mails: mpsc::UnboundedSender<String>) {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    if write.write_all(b"220 localhost ESMTP\r\n").await.is_err() {
        return;
    }
    loop {
        let mut line = String::new();
        match read.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let command = line.trim_end().to_ascii_uppercase();
        let reply: &[u8] = if command.starts_with("EHLO") || command.starts_with("HELO") {
            b"250-localhost\r\n250 OK\r\n"
        } else if command == "DATA" {
            if write.write_all(b"354 go ahead\r\n").await.is_err() {
                return;
            }
            let mut raw = Vec::new();
            while !raw.ends_with(b"\r\n.\r\n") {
                let mut byte = [0u8; 1];
                match read.read(&mut byte).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => raw.push(byte[0]),
                }
            }
            raw.truncate(raw.len() - b".\r\n".len());
            let _ = mails.send(String::from_utf8_lossy(&raw).into_owned());
            b"250 queued\r\n"
        } else if command == "QUIT" {
            let _ = write.write_all(b"221 bye\r\n").await;
            return;
        } else {
            b"250 OK\r\n"
        };
        if write.write_all(reply).await.is_err() {
            return;
        }
    }
}

/// A mail's text with quoted-printable soft breaks and `=3D` undone.
pub fn decode_mail(raw: &str) -> String {
    raw.replace("=\r\n", "").replace("=3D", "=")
}

/// The token that follows `prefix` in a mail ("Reset it with: ", say), at least 32 characters.
pub fn token_after(mail: &str, prefix: &str) -> String {
    let text = decode_mail(mail);
    let (_, rest) = text
        .split_once(prefix)
        .unwrap_or_else(|| panic!("no {prefix:?} in the mail:\n{text}"));
    let token: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        .collect();
    assert!(token.len() >= 32, "short token {token:?} in:\n{text}");
    token
}
