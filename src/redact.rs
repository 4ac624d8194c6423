//! Owns hiding secrets in what a process prints or logs: the password in a
//! URL's userinfo (`redis://user:PW@…`, `postgres://sink:PW@…`, an OTLP
//! endpoint with basic auth) becomes `***`. Secrets that are fields of their
//! own (the admin token, the migrations URL, Kafka client properties) are
//! never serialised at all (`#[serde(skip_serializing)]` in [`crate::config`]).

use url::Url;

/// What a hidden password is shown as.
pub const HIDDEN: &str = "***";

/// `text` with the password of its userinfo hidden, when it is a URL that has
/// one; anything else unchanged.
pub fn redact_url(text: &str) -> String {
    match Url::parse(text) {
        Ok(mut url) if url.password().is_some() => {
            // Fails only for URLs that cannot have a password, excluded above.
            let _ = url.set_password(Some(HIDDEN));
            url.to_string()
        }
        _ => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_userinfo_are_hidden() {
        assert_eq!(
            redact_url("postgres://sink:s3cret@db:5432/understudy"),
            "postgres://sink:***@db:5432/understudy"
        );
        assert_eq!(
            redact_url("rediss://user:p%40ss@cache:6380"),
            "rediss://user:***@cache:6380"
        );
        assert_eq!(
            redact_url("https://u:pw@collector:4318/v1/traces"),
            "https://u:***@collector:4318/v1/traces"
        );
    }

    #[test]
    fn urls_without_a_password_and_other_text_are_unchanged() {
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        assert_eq!(redact_url(""), "");
        assert_eq!(redact_url("not a url"), "not a url");
    }
}
