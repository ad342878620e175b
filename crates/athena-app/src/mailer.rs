use async_trait::async_trait;
use athena_config::{SmtpConfig, SmtpTls};
use athena_domain::Email;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::{AppError, AppResult};

/// Delivers login codes.
#[async_trait]
pub trait Mailer: Send + Sync + 'static {
    async fn send_login_code(&self, to: &Email, code: &str) -> AppResult<()>;
    /// Whether the code must be returned to the caller as `dev_code` (development without SMTP).
    fn returns_dev_code(&self) -> bool;
}

/// Development without SMTP: the code is logged (and returned as `dev_code` by the use case).
#[derive(Debug, Default)]
pub struct LogMailer;

#[async_trait]
impl Mailer for LogMailer {
    async fn send_login_code(&self, to: &Email, code: &str) -> AppResult<()> {
        tracing::info!(email = %to, dev_code = code, "login code (development mode, no SMTP configured)");
        Ok(())
    }
    fn returns_dev_code(&self) -> bool {
        true
    }
}

/// Mails codes through an SMTP server (lettre, pooled connections).
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl SmtpMailer {
    pub fn new(config: &SmtpConfig) -> AppResult<Self> {
        let builder = match config.tls {
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&config.host).map_err(AppError::internal)?,
            SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host).map_err(AppError::internal)?,
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host),
        };
        let mut builder = builder.port(config.port);
        if let (Some(user), Some(password)) = (&config.user, &config.password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.expose().to_string()));
        }
        let from: Mailbox = config.from.parse().map_err(|_| AppError::validation("SMTP_FROM", "is not a mailbox"))?;
        Ok(Self { transport: builder.build(), from })
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send_login_code(&self, to: &Email, code: &str) -> AppResult<()> {
        let to: Mailbox = to.as_str().parse().map_err(|_| AppError::validation("email", "is not a mailbox"))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(format!("Athena login code: {code}"))
            .body(format!(
                "Your Athena login code is {code}\n\nIt is valid for 10 minutes. If you did not ask for it, ignore this mail.\n\n\
                 您的 Athena 登录验证码是 {code}，10 分钟内有效。\n"
            ))
            .map_err(AppError::internal)?;
        self.transport.send(message).await.map_err(|e| AppError::Unavailable(Box::new(e)))?;
        Ok(())
    }
    fn returns_dev_code(&self) -> bool {
        false
    }
}
