//! Outgoing email (password resets, address verification), over SMTP. Without SMTP a mail can
//! go nowhere: the endpoints that send one answer 503, unless `auth.log_mails` (development
//! only) says to write mails to the log, at DEBUG, where a reset link is a secret.

use std::fmt;
use std::time::Duration;

use anyhow::Context as _;
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

pub use crate::config::{SmtpSettings, SmtpTls};

/// A slow or silent SMTP server must not hold a request (or a task) for long.
const SMTP_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Mail {
    pub to: String,
    pub subject: String,
    pub body: String,
}

pub enum Mailer {
    /// Boxed: the transport is large and the log variant is empty.
    Smtp(Box<SmtpMailer>),
    /// No SMTP, and `auth.log_mails` on: mails go to the log at DEBUG (a development setup).
    Log,
    /// No SMTP: nothing is sent, and whoever asks for a mail is told so.
    Unavailable,
}

pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    host: String,
    port: u16,
}

impl Mailer {
    /// A mailer for `settings`; with none, the log mailer when `log_mails` says so, else none.
    /// Fails on a `from` that is not a mailbox or a host lettre cannot use for TLS.
    pub fn new(settings: Option<SmtpSettings>, log_mails: bool) -> anyhow::Result<Self> {
        let Some(settings) = settings else {
            return Ok(if log_mails {
                Self::Log
            } else {
                Self::Unavailable
            });
        };
        let from: Mailbox = settings
            .from
            .parse()
            .with_context(|| format!("SMTP sender {:?} is not a valid mailbox", settings.from))?;
        let builder = match settings.tls {
            SmtpTls::None => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
            }
            SmtpTls::StartTls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&settings.host)
                    .with_context(|| format!("SMTP host {:?} for STARTTLS", settings.host))?
            }
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&settings.host)
                .with_context(|| format!("SMTP host {:?} for TLS", settings.host))?,
        };
        let mut builder = builder.port(settings.port).timeout(Some(SMTP_TIMEOUT));
        if let Some(username) = settings.username {
            let password = settings
                .password
                .map(|p| p.expose().to_owned())
                .unwrap_or_default();
            builder = builder.credentials(Credentials::new(username, password));
        }
        Ok(Self::Smtp(Box::new(SmtpMailer {
            transport: builder.build(),
            from,
            host: settings.host,
            port: settings.port,
        })))
    }

    pub async fn send(&self, mail: Mail) -> anyhow::Result<()> {
        match self {
            Self::Smtp(smtp) => {
                let to: Mailbox = mail
                    .to
                    .parse()
                    .with_context(|| format!("recipient {:?} is not a valid mailbox", mail.to))?;
                let message = Message::builder()
                    .from(smtp.from.clone())
                    .to(to)
                    .subject(mail.subject)
                    .header(ContentType::TEXT_PLAIN)
                    .body(mail.body)
                    .context("building the mail")?;
                smtp.transport.send(message).await.with_context(|| {
                    format!("sending mail via SMTP {}:{}", smtp.host, smtp.port)
                })?;
                Ok(())
            }
            Self::Log => {
                // The body holds a secret link: DEBUG only, and only when asked for.
                tracing::debug!(to = %mail.to, subject = %mail.subject, body = %mail.body, "mail (auth.log_mails, no SMTP)");
                Ok(())
            }
            Self::Unavailable => anyhow::bail!("no [smtp] configured: the mail was not sent"),
        }
    }

    /// Whether a mail can go anywhere at all.
    pub fn available(&self) -> bool {
        !matches!(self, Self::Unavailable)
    }

    /// For the startup log: `smtp host:port`, `log` or `none`.
    pub fn describe(&self) -> String {
        match self {
            Self::Smtp(smtp) => format!("smtp {}:{}", smtp.host, smtp.port),
            Self::Log => "log".to_owned(),
            Self::Unavailable => "none".to_owned(),
        }
    }
}

impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mailer({})", self.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;

    /// A one-connection SMTP server that returns the DATA it received.
    async fn fake_smtp() -> (u16, tokio::task::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (read, mut write) = stream.into_split();
            let mut read = BufReader::new(read);
            write.write_all(b"220 localhost ESMTP\r\n").await.unwrap();
            let mut data = String::new();
            loop {
                let mut line = String::new();
                if read.read_line(&mut line).await.unwrap() == 0 {
                    break;
                }
                let command = line.trim_end().to_ascii_uppercase();
                if command.starts_with("EHLO") || command.starts_with("HELO") {
                    write
                        .write_all(b"250-localhost\r\n250 OK\r\n")
                        .await
                        .unwrap();
                } else if command == "DATA" {
                    write.write_all(b"354 go ahead\r\n").await.unwrap();
                    let mut raw = Vec::new();
                    while !raw.ends_with(b"\r\n.\r\n") {
                        let mut byte = [0u8; 1];
                        if read.read(&mut byte).await.unwrap() == 0 {
                            break;
                        }
                        raw.push(byte[0]);
                    }
                    data = String::from_utf8(raw).unwrap();
                    write.write_all(b"250 queued\r\n").await.unwrap();
                } else if command == "QUIT" {
                    write.write_all(b"221 bye\r\n").await.unwrap();
                    break;
                } else {
                    write.write_all(b"250 OK\r\n").await.unwrap();
                }
            }
            data
        });
        (port, task)
    }

    fn settings(port: u16) -> SmtpSettings {
        SmtpSettings {
            host: "127.0.0.1".to_owned(),
            port,
            username: None,
            password: None,
            from: "Gateway <noreply@example.com>".to_owned(),
            tls: SmtpTls::None,
        }
    }

    #[tokio::test]
    async fn sends_over_plain_smtp() {
        let (port, server) = fake_smtp().await;
        let mailer = Mailer::new(Some(settings(port)), false).unwrap();
        assert_eq!(mailer.describe(), format!("smtp 127.0.0.1:{port}"));
        mailer
            .send(Mail {
                to: "alice@example.com".to_owned(),
                subject: "Reset your password".to_owned(),
                body: "Open this link: http://localhost/reset?t=abc123\n".to_owned(),
            })
            .await
            .unwrap();
        let data = server.await.unwrap();
        assert!(data.contains("To: alice@example.com"), "{data}");
        assert!(
            data.contains("From: Gateway <noreply@example.com>"),
            "{data}"
        );
        assert!(data.contains("Subject: Reset your password"), "{data}");
        assert!(
            data.contains("Open this link: http://localhost/reset?t=abc123"),
            "{data}"
        );
    }

    #[test]
    fn rejects_a_bad_sender() {
        let mut bad = settings(25);
        bad.from = "not a mailbox".to_owned();
        assert!(Mailer::new(Some(bad), false).is_err());
    }

    #[tokio::test]
    async fn without_smtp_nothing_is_sent_unless_logging_is_asked_for() {
        let none = Mailer::new(None, false).unwrap();
        assert!(!none.available());
        let mail = || Mail {
            to: "bob@example.com".to_owned(),
            subject: "s".to_owned(),
            body: "b".to_owned(),
        };
        assert!(none.send(mail()).await.is_err());
        let mailer = Mailer::new(None, true).unwrap();
        assert!(mailer.available());
        assert_eq!(mailer.describe(), "log");
        mailer
            .send(Mail {
                to: "bob@example.com".to_owned(),
                subject: "s".to_owned(),
                body: "b".to_owned(),
            })
            .await
            .unwrap();
    }
}
