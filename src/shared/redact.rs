//! Owns hiding secrets in what a process prints or logs: the password in a
//! URL's userinfo (`redis://user:PW@…`, `postgres://sink:PW@…`, an OTLP
//! endpoint with basic auth), a `?password=` query parameter and a
//! `password=` setting of a key=value connection string become `***`. Secrets that are fields of their
//! own (the admin token, the migrations URL, Kafka client properties) are
//! never serialised at all (`#[serde(skip_serializing)]` in [`crate::config`]).

use url::Url;

/// What a hidden password is shown as.
pub const HIDDEN: &str = "***";

/// Names of query parameters and `key=value` settings that hold a secret
/// (libpq's `password`, `sslpassword`; tokens of HTTP endpoints).
const SECRET_KEYS: [&str; 10] = [
    "password",
    "sslpassword",
    "pass",
    "pwd",
    "secret",
    "token",
    "access_token",
    "api_key",
    "apikey",
    "auth",
];

fn is_secret_key(key: &str) -> bool {
    SECRET_KEYS
        .iter()
        .any(|secret| key.eq_ignore_ascii_case(secret))
}

/// `text` with its secrets hidden: the password of a URL's userinfo, query
/// parameters named like a secret (`?password=…`), and `password=…` in a
/// `key=value` connection string; anything else unchanged.
pub fn redact_url(text: &str) -> String {
    let Ok(mut url) = Url::parse(text) else {
        return redact_key_values(&redact_unparsed_userinfo(text));
    };
    let mut changed = false;
    if url.password().is_some() {
        // Fails only for URLs that cannot have a password, excluded here.
        let _ = url.set_password(Some(HIDDEN));
        changed = true;
    }
    if url.query_pairs().any(|(key, _)| is_secret_key(&key)) {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(key, value)| {
                let value = if is_secret_key(&key) {
                    HIDDEN.to_owned()
                } else {
                    value.into_owned()
                };
                (key.into_owned(), value)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
        changed = true;
    }
    if changed {
        url.to_string()
    } else {
        text.to_owned()
    }
}

/// `scheme://user:pw@host…` that the URL parser refused (a multi-host
/// PostgreSQL URL, a malformed one) with what stands between the user and the
/// last `@` of its authority hidden.
fn redact_unparsed_userinfo(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return text.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            format!("{scheme}://{user}:{HIDDEN}@{hosts}{tail}")
        }
        None => text.to_owned(),
    }
}

/// `host=db password=pw …` (or `password = pw`) with every secret value hidden.
fn redact_key_values(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut shown = Vec::with_capacity(words.len());
    let mut hide_next = false;
    for (index, word) in words.iter().enumerate() {
        if hide_next && *word != "=" {
            shown.push(HIDDEN.to_owned());
            hide_next = false;
            continue;
        }
        match word.split_once('=') {
            Some((key, "")) if is_secret_key(key) => {
                shown.push((*word).to_owned());
                hide_next = true;
            }
            Some((key, _)) if is_secret_key(key) => shown.push(format!("{key}={HIDDEN}")),
            _ => {
                hide_next |= is_secret_key(word) && words.get(index + 1) == Some(&"=");
                shown.push((*word).to_owned());
            }
        }
    }
    shown.join(" ")
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
    fn secrets_in_query_parameters_and_key_value_strings_are_hidden() {
        assert_eq!(
            redact_url("postgres://db/understudy?user=sink&password=pg-secret"),
            "postgres://db/understudy?user=sink&password=***"
        );
        assert_eq!(
            redact_url("host=db user=sink password=pg-secret dbname=understudy"),
            "host=db user=sink password=*** dbname=understudy"
        );
    }

    #[test]
    fn secrets_the_url_parser_refuses_or_spaced_settings_are_hidden_too() {
        assert_eq!(
            redact_url("postgres://sink:pg-secret@db1:5432,db2:5432/understudy"),
            "postgres://sink:***@db1:5432,db2:5432/understudy"
        );
        assert_eq!(
            redact_url("host=db password = pg-secret\tdbname=u"),
            "host=db password = *** dbname=u"
        );
        assert_eq!(
            redact_url("https://collector:4318/v1/traces?api_key=k-secret"),
            "https://collector:4318/v1/traces?api_key=***"
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
