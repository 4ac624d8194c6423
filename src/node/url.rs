//! Owns what a node's base URL may be: `http(s)://host[:port]` and nothing
//! more. A node advertises it (`node.advertised_url`) in its election member;
//! the gateway and the standbys call paths under it. A path, query, fragment or
//! credentials in it would let whoever writes a member znode aim those calls
//! anywhere (`…/internal/secret?x=` swallows the path appended to it).

use url::Url;

/// `text` as `scheme://host:port` when it is a plain base URL, else `None`.
pub fn base_url(text: &str) -> Option<String> {
    let url = Url::parse(text).ok()?;
    let plain = matches!(url.scheme(), "http" | "https")
        && url.username().is_empty()
        && url.password().is_none()
        && matches!(url.path(), "" | "/")
        && url.query().is_none()
        && url.fragment().is_none();
    if !plain {
        return None;
    }
    let host = url.host_str()?;
    let port = url.port_or_known_default()?;
    Some(format!("{}://{host}:{port}", url.scheme()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_base_url_is_kept_with_its_port() {
        assert_eq!(
            base_url("http://node-1.internal:8081/").as_deref(),
            Some("http://node-1.internal:8081")
        );
        assert_eq!(
            base_url("https://[::1]").as_deref(),
            Some("https://[::1]:443")
        );
    }

    #[test]
    fn anything_that_could_redirect_a_call_is_refused() {
        for aimed in [
            "http://127.0.0.1:18666/internal/credentials?x=",
            "http://127.0.0.1:18666/admin/secret#",
            "http://127.0.0.1:18666/?q",
            "http://user:pw@127.0.0.1:8081",
            "file:///etc/passwd",
            "gopher://127.0.0.1:6379/_FLUSHALL",
            "http://[::1",
            "node-1:8081",
        ] {
            assert_eq!(base_url(aimed), None, "{aimed}");
        }
    }
}
