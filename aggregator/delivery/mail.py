"""Sending report links by e-mail: the :class:`Mailer` protocol and its SMTP implementation."""

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol

from aggregator.delivery.settings import SmtpSettings


class MailError(Exception):
    pass


@dataclass(frozen=True)
class Mail:
    to: tuple[str, ...]
    subject: str
    body: str


class Mailer(Protocol):
    def send(self, mail: Mail) -> None: ...


class SmtpMailer:
    def __init__(self, settings: SmtpSettings, ssl_context: ssl.SSLContext | None = None) -> None:
        self.settings = settings
        self.context = ssl_context or ssl.create_default_context()

    def send(self, mail: Mail) -> None:
        s = self.settings
        message = EmailMessage()
        message["From"] = s.sender
        message["To"] = ", ".join(mail.to)
        message["Subject"] = mail.subject
        message.set_content(mail.body)
        try:
            if s.security == "tls":
                client: smtplib.SMTP = smtplib.SMTP_SSL(
                    s.host, s.port, timeout=s.timeout_seconds, context=self.context
                )
            else:
                client = smtplib.SMTP(s.host, s.port, timeout=s.timeout_seconds)
            with client:
                if s.security == "starttls":
                    client.starttls(context=self.context)
                password = s.password_value()
                if s.username and password is not None:
                    client.login(s.username, password)
                refused = client.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            raise MailError(f"SMTP {s.host}:{s.port}: {exc}") from None
        if refused:
            raise MailError(
                f"SMTP {s.host}:{s.port} refused recipients: {', '.join(sorted(refused))}"
            )
