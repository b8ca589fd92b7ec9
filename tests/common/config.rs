//! The test gateway's config, built one way for every harness: the standard test providers and
//! models on the mock (`config_text_on`), plus any whole sections a test writes out as TOML
//! (`sections`: a `[limits]` table is clearer as the text a user would write), then typed
//! changes to the validated `Config` (`database`, `identity`, `metering`, `routing`), so a test that
//! changes one setting names it and the compiler checks it.

use std::path::Path;

use gateway::config::{
    Config, IdentityConfig, MeteringConfig, RoutingConfig, Secret, ServerConfig,
};

/// One typed change to the validated config.
type Change = Box<dyn FnOnce(&mut Config)>;

#[derive(Default)]
pub struct TestConfig {
    mock_url: String,
    db_url: String,
    sections: String,
    changes: Vec<Change>,
}

impl TestConfig {
    /// The standard test config, on an in-memory SQLite. The harness (`common::start_config`)
    /// points it at the mock it starts; a test with its own mock calls [`Self::mock`].
    pub fn new() -> Self {
        Self {
            db_url: super::db::SQLITE_MEMORY.to_string(),
            ..Self::default()
        }
    }

    pub fn mock(mut self, mock_url: &str) -> Self {
        self.mock_url = mock_url.to_string();
        self
    }

    /// Replaces `{MOCK_ADDR}` in the sections with the mock's `host:port` (extra providers
    /// pointed at the mock under other paths).
    pub(super) fn mock_addr(mut self, addr: &str) -> Self {
        self.sections = self.sections.replace("{MOCK_ADDR}", addr);
        self
    }

    /// The database the gateway opens (see [`super::db::databases`]).
    pub fn database(mut self, url: &str) -> Self {
        self.db_url = url.to_string();
        self
    }

    /// Whole config sections as a user would write them, appended to the standard ones.
    pub fn sections(mut self, toml: &str) -> Self {
        self.sections.push('\n');
        self.sections.push_str(toml);
        self
    }

    pub fn metering(mut self, change: impl FnOnce(&mut MeteringConfig) + 'static) -> Self {
        self.changes.push(Box::new(|c| change(&mut c.metering)));
        self
    }

    pub fn identity(mut self, change: impl FnOnce(&mut IdentityConfig) + 'static) -> Self {
        self.changes.push(Box::new(|c| change(&mut c.identity)));
        self
    }

    pub fn server(mut self, change: impl FnOnce(&mut ServerConfig) + 'static) -> Self {
        self.changes.push(Box::new(|c| change(&mut c.server)));
        self
    }

    pub fn routing(mut self, change: impl FnOnce(&mut RoutingConfig) + 'static) -> Self {
        self.changes.push(Box::new(|c| change(&mut c.routing)));
        self
    }

    /// Usage records the database refuses go to `path`.
    pub fn usage_spool(self, path: &Path) -> Self {
        let path = path.to_path_buf();
        self.metering(|m| m.undelivered_file = path)
    }

    /// The config text before the typed changes (for a gateway started as a process).
    pub async fn text(&self) -> String {
        super::config_text_on(&self.mock_url, &self.db_url, &self.sections).await
    }

    pub async fn build(self) -> Config {
        let text = self.text().await;
        let mut config = Config::parse(&text, "test", &|_| None)
            .unwrap_or_else(|e| panic!("the test config is valid: {e}"));
        // The database URL is typed too: a URL with a password must not be spliced as text.
        config.database.url = Secret::new(self.db_url);
        for change in self.changes {
            change(&mut config);
        }
        config
    }
}
