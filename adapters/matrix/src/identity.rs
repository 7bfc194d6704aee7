//! The bot's cross-signing identity: bootstrapped once (master, self-signing
//! and user-signing keys) and used to sign the bot's own device, so that in
//! encrypted rooms people see the bot's device as verified by its owner
//! rather than with an "unverified device" warning. Synapse lets a user's
//! first cross-signing keys be uploaded without re-authenticating (MSC3967);
//! where a homeserver asks for it, the bot's password answers.

use crate::Matrix;
use matrix_sdk::ruma::api::client::uiaa;

impl Matrix {
    /// Creates the cross-signing identity where there is none yet and signs
    /// this device with it. A failure is logged, not fatal: the bot works
    /// unverified, as it did before.
    pub(crate) async fn bootstrap_cross_signing(&self) {
        let encryption = self.client.encryption();
        let first = encryption.bootstrap_cross_signing_if_needed(None).await;
        let result = match first {
            Ok(()) => Ok(()),
            Err(e) => match (e.as_uiaa_response(), self.settings.password.as_deref()) {
                (Some(uiaa_info), Some(password)) => {
                    let mut auth = uiaa::Password::new(
                        uiaa::UserIdentifier::Matrix(uiaa::MatrixUserIdentifier::new(
                            self.own.to_string(),
                        )),
                        password.to_string(),
                    );
                    auth.session = uiaa_info.session.clone();
                    encryption
                        .bootstrap_cross_signing(Some(uiaa::AuthData::Password(auth)))
                        .await
                }
                _ => Err(e),
            },
        };
        match result {
            Ok(()) => {
                tracing::info!(device = ?self.client.device_id(), "the bot's device is cross-signed by its own identity")
            }
            Err(e) => tracing::warn!(
                error = %e,
                "could not set up cross-signing; the bot's device shows as unverified (a password in [matrix] lets the homeserver confirm it)"
            ),
        }
    }

    /// Whether this device is signed by the bot's own cross-signing identity.
    pub async fn own_device_is_cross_signed(&self) -> bool {
        let Some(device_id) = self.client.device_id() else {
            return false;
        };
        match self
            .client
            .encryption()
            .get_device(&self.own, device_id)
            .await
        {
            Ok(Some(device)) => device.is_cross_signed_by_owner(),
            _ => false,
        }
    }
}
