//! The administrative commands of the binary: `migrate up|down|status` and `user create`.

use std::io::BufRead;

use anyhow::{bail, Context};

use crate::config::{Config, Secret};
use crate::context::Role;
use crate::identity::accounts::Registration;
use crate::identity::Identity;
use crate::store::Store;

pub enum MigrateAction {
    Up,
    /// `force`: revert the identity migration too (it drops better-auth's shared tables).
    Down {
        steps: usize,
        force: bool,
    },
    Status,
}

pub async fn migrate(config: &Config, action: MigrateAction) -> anyhow::Result<()> {
    let store = Store::connect(&config.database).await?;
    match action {
        MigrateAction::Up => {
            let applied = store.migrate_up().await?;
            println!("{}: applied {applied} migration(s)", store.engine());
        }
        MigrateAction::Down { steps, force } => {
            let applied: Vec<i64> = store
                .migration_status()
                .await?
                .into_iter()
                .filter(|m| m.applied)
                .map(|m| m.version)
                .collect();
            let reaches_identity = applied.iter().rev().take(steps).any(|v| *v == 1);
            if reaches_identity && !force {
                store.close().await;
                bail!(
                    "reverting migration 1 drops the user, session, account and verification tables, which a better-auth app sharing this database also uses; pass --force to do it anyway"
                );
            }
            let reverted = store.migrate_down(steps).await?;
            if reverted.is_empty() {
                println!("{}: nothing to revert", store.engine());
            }
            for version in reverted {
                println!("{}: reverted {version}", store.engine());
            }
        }
        MigrateAction::Status => {
            for m in store.migration_status().await? {
                let state = if m.applied { "applied" } else { "pending" };
                println!("{:>4}  {state:<8} {}", m.version, m.description);
            }
        }
    }
    store.close().await;
    Ok(())
}

pub struct NewUserArgs {
    pub email: String,
    pub username: Option<String>,
    pub name: Option<String>,
    pub admin: bool,
    /// Read the password from stdin's first line instead of `GATEWAY_USER_PASSWORD`.
    pub password_stdin: bool,
}

/// Creates a user (the first admin, typically). The password comes from stdin or an
/// environment variable, never from the command line, where `ps` would show it.
pub async fn create_user(config: &Config, args: NewUserArgs) -> anyhow::Result<()> {
    let password = if args.password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from stdin")?;
        line.trim_end_matches(['\r', '\n']).to_string()
    } else {
        match std::env::var("GATEWAY_USER_PASSWORD") {
            Ok(p) if !p.is_empty() => p,
            _ => bail!("give the password on stdin (--password-stdin) or in GATEWAY_USER_PASSWORD"),
        }
    };
    let store = Store::connect(&config.database).await?;
    store.migrate_up().await?;
    // Only for hashing and storing: no tokens are issued here.
    let identity = Identity::new(
        config,
        store.clone(),
        &Secret::new("unused-for-user-creation-only-0000"),
    )?;
    let role = if args.admin { Role::Admin } else { Role::User };
    let user = identity
        .create_user(
            Registration {
                email: args.email,
                password,
                username: args.username,
                name: args.name,
            },
            role,
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "created {} user {} ({})",
        role.as_str(),
        user.email,
        user.id
    );
    store.close().await;
    Ok(())
}
