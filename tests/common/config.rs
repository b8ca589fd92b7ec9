//! The test gateway's config built in code: the standard test providers and models on the
//! mock (`config_text_on`), then typed changes to the validated `Config`, so a test names the
//! setting it changes and the compiler checks it, instead of splicing TOML text.

use std::path::Path;

use gateway::config::{Config, MeteringConfig, RoutingConfig, Secret};

pub struct TestConfig {
    config: Config,
}

impl TestConfig {
    /// The standard test config against the mock at `mock_url`, on an in-memory SQLite.
    pub async fn new(mock_url: &str) -> Self {
        let text = super::config_text(mock_url, "").await;
        let config = Config::parse(&text, "test", &|_| None).expect("test config is valid");
        Self { config }
    }

    pub fn database(mut self, url: &str) -> Self {
        self.config.database.url = Secret::new(url.to_string());
        self
    }

    pub fn metering(mut self, change: impl FnOnce(&mut MeteringConfig)) -> Self {
        change(&mut self.config.metering);
        self
    }

    pub fn routing(mut self, change: impl FnOnce(&mut RoutingConfig)) -> Self {
        change(&mut self.config.routing);
        self
    }

    /// Usage records the database refuses go to `path`.
    pub fn usage_spool(self, path: &Path) -> Self {
        let path = path.to_path_buf();
        self.metering(|m| m.undelivered_file = path)
    }

    pub fn build(self) -> Config {
        self.config
    }
}
