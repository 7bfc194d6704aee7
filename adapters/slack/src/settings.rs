//! What the adapter needs to know about the Slack app it speaks for.

use std::fmt;

/// Credentials and endpoints of one Slack app.
///
/// `Debug` never prints the tokens or the signing secret.
#[derive(Clone)]
pub struct Settings {
    /// Bot token (`xoxb-…`) for the Web API calls.
    pub bot_token: String,
    /// Signing secret that Slack signs every HTTP request with.
    pub signing_secret: String,
    /// App-level token (`xapp-…`); set means Socket Mode can be used.
    pub app_token: Option<String>,
    /// Base of the Web API, `https://slack.com/api/` unless tests point it at a fake.
    pub api_url: String,
}

impl Settings {
    /// Slack's own Web API base.
    pub const DEFAULT_API_URL: &'static str = "https://slack.com/api/";

    /// Settings for HTTP endpoints only, against Slack's real API.
    pub fn new(bot_token: impl Into<String>, signing_secret: impl Into<String>) -> Settings {
        Settings {
            bot_token: bot_token.into(),
            signing_secret: signing_secret.into(),
            app_token: None,
            api_url: Settings::DEFAULT_API_URL.to_string(),
        }
    }

    /// The API base without its trailing slash: slack-morphism appends `/method`.
    pub(crate) fn api_base(&self) -> &str {
        self.api_url.trim_end_matches('/')
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("bot_token", &"<redacted>")
            .field("signing_secret", &"<redacted>")
            .field("app_token", &self.app_token.as_ref().map(|_| "<redacted>"))
            .field("api_url", &self.api_url)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_secrets() {
        let mut s = Settings::new("xoxb-HIDDEN1", "HIDDEN2");
        s.app_token = Some("xapp-HIDDEN3".into());
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("HIDDEN"),
            "no secret in Debug output: {shown}"
        );
    }

    #[test]
    fn api_base_drops_the_trailing_slash() {
        let mut s = Settings::new("t", "s");
        assert_eq!(s.api_base(), "https://slack.com/api");
        s.api_url = "http://127.0.0.1:9/api".into();
        assert_eq!(s.api_base(), "http://127.0.0.1:9/api");
    }
}
