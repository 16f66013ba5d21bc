//! The error type shared by the plugin contract.

/// Errors raised by the plugin contract: building plugins, checking inputs, and candle itself.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor operation failed inside candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// No plugin of this kind is registered under the name.
    #[error("unknown {kind} plugin `{name}`; registered {kind} plugins: {known}")]
    UnknownPlugin {
        /// "generator" or "discriminator".
        kind: &'static str,
        /// The name that was asked for.
        name: String,
        /// The registered names, comma-separated.
        known: String,
    },
    /// A plugin was registered twice under one name.
    #[error("a {kind} plugin named `{name}` is already registered")]
    DuplicatePlugin {
        /// "generator" or "discriminator".
        kind: &'static str,
        /// The name registered twice.
        name: String,
    },
    /// A plugin's configuration could not be read (unknown or missing field, wrong type).
    #[error("invalid config for {kind} plugin `{plugin}`: {message}")]
    InvalidConfig {
        /// "generator" or "discriminator".
        kind: &'static str,
        /// The plugin's name.
        plugin: String,
        /// What is wrong, naming the field.
        message: String,
    },
    /// A training loss or statistic is not finite: the run diverged.
    #[error("{what} is {value}: training diverged")]
    Diverged {
        /// The quantity, such as "discriminator loss".
        what: String,
        /// Its value.
        value: f32,
    },
    /// An input that the caller supplied is unusable (wrong shape, empty prompt, ...).
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

impl Error {
    /// A recipe's config that cannot be used: [`Error::InvalidConfig`] of the recipe named `recipe`.
    pub fn recipe_config(recipe: &str, message: impl Into<String>) -> Self {
        Self::InvalidConfig { kind: "recipe", plugin: recipe.to_string(), message: message.into() }
    }

    /// Checks that each named setting of recipe `recipe` is finite and at least 0 (a weight, a scale),
    /// naming the first that is not.
    pub fn check_non_negative(recipe: &str, settings: &[(&str, f64)]) -> Result<()> {
        match settings.iter().find(|(_, v)| !(v.is_finite() && *v >= 0.0)) {
            Some((name, v)) => {
                Err(Self::recipe_config(recipe, format!("`{name}` must be finite and at least 0, not {v}")))
            }
            None => Ok(()),
        }
    }
}

/// Result with the contract's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
