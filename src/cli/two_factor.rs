//! `execgov 2fa enrol|confirm|reset`: a person's second factor for step-up
//! approval (`risk = "critical"`), from the command line. The web's
//! `/account/2fa` does the same with a QR code.

use super::local::cli_actor;
use super::{As, EXIT_REFUSED};
use crate::app;
use crate::clock::SystemClock;
use crate::config::Config;
use crate::types::PersonId;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, clap::Subcommand)]
pub enum TwoFactorCmd {
    /// Start enrolling your second factor: prints the `otpauth://` URI (and the
    /// secret) to add to an authenticator app; then `2fa confirm CODE`.
    Enrol {
        #[command(flatten)]
        who: As,
    },
    /// Confirm your enrolment with the first code the app shows.
    Confirm {
        code: String,
        #[command(flatten)]
        who: As,
    },
    /// Remove PERSON's second factor so they enrol again (admins; audited).
    Reset {
        #[arg(value_name = "PERSON")]
        whom: String,
        #[command(flatten)]
        who: As,
    },
}

pub(super) async fn run(config: Config, cmd: TwoFactorCmd) -> anyhow::Result<ExitCode> {
    let engine = app::build_engine(Arc::new(config), Arc::new(SystemClock)).await?;
    let refused = |why: String| {
        eprintln!("{why}");
        Ok(ExitCode::from(EXIT_REFUSED))
    };
    match cmd {
        TwoFactorCmd::Enrol { who } => {
            let actor = cli_actor(&engine, &who).await?;
            match engine.enrol_factor(&actor).await? {
                Ok(e) => {
                    println!(
                        "Add this to your authenticator app (scan it as a QR code, or type the secret):"
                    );
                    println!("secret: {}", e.secret);
                    println!("{}", e.uri);
                    eprintln!(
                        "then confirm with the first code it shows: execgov 2fa confirm CODE"
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(why) => refused(why),
            }
        }
        TwoFactorCmd::Confirm { code, who } => {
            let actor = cli_actor(&engine, &who).await?;
            match engine.confirm_factor(&actor, &code).await? {
                Ok(()) => {
                    println!("second factor confirmed; critical approvals now ask for a code");
                    Ok(ExitCode::SUCCESS)
                }
                Err(why) => refused(why),
            }
        }
        TwoFactorCmd::Reset { whom, who } => {
            let actor = cli_actor(&engine, &who).await?;
            let person = PersonId(whom);
            match engine.reset_factor(&actor, &person).await? {
                Ok(true) => {
                    println!(
                        "{person}'s second factor is removed; they enrol again before approving critical runs"
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Ok(false) => {
                    println!("{person} had no second factor; nothing to remove");
                    Ok(ExitCode::SUCCESS)
                }
                Err(why) => refused(why),
            }
        }
    }
}
