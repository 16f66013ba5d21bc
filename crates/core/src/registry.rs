//! Finds plugins by name and builds them from their serde configs.

use std::collections::BTreeMap;

use candle_nn::VarBuilder;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::recipe::{Model, Network, NetworkKind, Recipe, RecipeSetup};
use crate::{Discriminator, Error, Generator, Result};

/// Which plugin to build, and its configuration (any JSON/TOML table the plugin's config type reads).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// The registered plugin name, such as `"mlp"`.
    pub plugin: String,
    /// The plugin's configuration; omitted fields take the plugin's defaults.
    #[serde(default = "empty_table")]
    pub config: serde_json::Value,
    /// Discriminators only: score packs of this many samples (PacGAN; see [`crate::pack`]). The
    /// plugin is built for samples this many times as wide.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pack: Option<usize>,
}

fn empty_table() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

impl ModelSpec {
    /// A spec for `plugin` with the given config value.
    pub fn new(plugin: impl Into<String>, config: impl Serialize) -> Result<Self> {
        let config =
            serde_json::to_value(config).map_err(|e| Error::InvalidInput(format!("config does not serialise: {e}")))?;
        Ok(Self { plugin: plugin.into(), config, pack: None })
    }

    /// The same spec with discriminator packing (see [`crate::pack`]).
    pub fn packed(self, pack: usize) -> Self {
        Self { pack: Some(pack), ..self }
    }

    /// The same spec with its config's `field` set to `value`: for a recipe that decides a field of a
    /// network it declares (the width of a head, say). A message saying why not when the config is not
    /// a table or the user set the field to another value.
    pub fn with_field(&self, field: &str, value: serde_json::Value) -> std::result::Result<Self, String> {
        let mut spec = self.clone();
        let config = spec
            .config
            .as_object_mut()
            .ok_or_else(|| format!("the `{}` config must be a table to take `{field}`", self.plugin))?;
        match config.get(field) {
            Some(given) if *given != value => Err(format!(
                "`{field}` of `{}` is {given}, but the recipe needs {value}; leave it out and the recipe sets it",
                self.plugin
            )),
            _ => {
                config.insert(field.to_string(), value);
                Ok(spec)
            }
        }
    }

    /// The pack size in force: more than one sample a pack.
    fn packing(&self) -> Option<usize> {
        self.pack.filter(|&m| m > 1)
    }
}

/// What the pipeline knows of the data before it builds a model: the shape of one sample and the size
/// of the conditioning vectors (0 for unconditional data). [`Registry::resolve_in_context`] fills the
/// plugin config fields a user left out from it, so configs need not repeat them:
///
/// | field | filled with |
/// | --- | --- |
/// | `cond_dim` | the data's conditioning size |
/// | `image_size`, `channels` | `H` and `C` of square image samples `(C, H, H)` |
/// | `output_shape` (generators), `input_shape` (other roles) | the sample shape |
///
/// A plugin takes part by naming its config fields so; a field the user sets is never changed (write
/// `cond_dim = 0` for an unconditional model on conditional data).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildContext {
    /// Shape of one sample, without the batch dimension.
    pub sample_shape: Vec<usize>,
    /// Size of the conditioning vectors; 0 when the data has none.
    pub cond_dim: usize,
}

impl BuildContext {
    /// The context fields and their values for a network of role `kind`.
    fn fields(&self, kind: NetworkKind) -> Vec<(&'static str, serde_json::Value)> {
        let mut fields = vec![("cond_dim", self.cond_dim.into())];
        if let [c, h, w] = self.sample_shape[..] {
            if h == w {
                fields.extend([("image_size", h.into()), ("channels", c.into())]);
            }
        }
        let shape = if kind == NetworkKind::Generator { "output_shape" } else { "input_shape" };
        fields.push((shape, self.sample_shape.clone().into()));
        fields
    }
}

type Build<T> = Box<dyn Fn(&serde_json::Value, VarBuilder) -> Result<Box<T>> + Send + Sync>;
type BuildRecipe = Box<dyn Fn(&serde_json::Value, &RecipeSetup) -> Result<Box<dyn Recipe>> + Send + Sync>;
type Resolve = Box<dyn Fn(&serde_json::Value) -> Result<serde_json::Value> + Send + Sync>;

/// A registered plugin: its constructor (`B`, one of the `Build` types) and its config resolver.
struct Entry<B> {
    build: B,
    resolve: Resolve,
}

/// The plugins known to a program. Condor's built-in plugins are registered by `condor::registry()`;
/// any crate can add its own with [`Registry::register_generator`] and
/// [`Registry::register_discriminator`].
#[derive(Default)]
pub struct Registry {
    generators: BTreeMap<String, Entry<Build<dyn Generator>>>,
    discriminators: BTreeMap<String, Entry<Build<dyn Discriminator>>>,
    networks: BTreeMap<String, Entry<Build<dyn Network>>>,
    recipes: BTreeMap<String, Entry<BuildRecipe>>,
}

/// Reads a plugin config of type `C` from JSON, naming the offending field on failure (`kind` and
/// `plugin` name the plugin in the error).
pub fn parse_config<C: DeserializeOwned>(kind: &'static str, plugin: &str, value: &serde_json::Value) -> Result<C> {
    serde_json::from_value(value.clone()).map_err(|e| Error::InvalidConfig {
        kind,
        plugin: plugin.to_string(),
        message: e.to_string(),
    })
}

/// The resolver of a plugin whose config type is `C`: the config with every default filled in.
fn resolver<C>(kind: &'static str, name: &str) -> Resolve
where
    C: DeserializeOwned + Serialize + 'static,
{
    let name = name.to_string();
    Box::new(move |value| {
        let config: C = parse_config(kind, &name, value)?;
        serde_json::to_value(config).map_err(|e| Error::InvalidInput(e.to_string()))
    })
}

fn entry<C, T: ?Sized + 'static>(
    kind: &'static str,
    name: &str,
    make: impl Fn(C, VarBuilder) -> Result<Box<T>> + Send + Sync + 'static,
) -> Entry<Build<T>>
where
    C: DeserializeOwned + Serialize + 'static,
{
    let n = name.to_string();
    Entry {
        build: Box::new(move |value, vb| make(parse_config::<C>(kind, &n, value)?, vb)),
        resolve: resolver::<C>(kind, name),
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a generator plugin: `name`, its config type `C` (serde, with defaults for omitted
    /// fields), and a constructor from the config and a `VarBuilder` that holds the device and dtype.
    pub fn register_generator<C, G, F>(&mut self, name: &str, constructor: F) -> Result<()>
    where
        C: DeserializeOwned + Serialize + 'static,
        G: Generator + 'static,
        F: Fn(C, VarBuilder) -> Result<G> + Send + Sync + 'static,
    {
        insert(
            &mut self.generators,
            "generator",
            name,
            entry("generator", name, move |c: C, vb| Ok(Box::new(constructor(c, vb)?) as Box<dyn Generator>)),
        )
    }

    /// Registers a discriminator plugin; see [`Registry::register_generator`].
    pub fn register_discriminator<C, D, F>(&mut self, name: &str, constructor: F) -> Result<()>
    where
        C: DeserializeOwned + Serialize + 'static,
        D: Discriminator + 'static,
        F: Fn(C, VarBuilder) -> Result<D> + Send + Sync + 'static,
    {
        insert(
            &mut self.discriminators,
            "discriminator",
            name,
            entry("discriminator", name, move |c: C, vb| Ok(Box::new(constructor(c, vb)?) as Box<dyn Discriminator>)),
        )
    }

    /// Registers a plugin for networks of any other role ([`Network`]: encoders, auxiliary heads);
    /// see [`Registry::register_generator`].
    pub fn register_network<C, N, F>(&mut self, name: &str, constructor: F) -> Result<()>
    where
        C: DeserializeOwned + Serialize + 'static,
        N: Network + 'static,
        F: Fn(C, VarBuilder) -> Result<N> + Send + Sync + 'static,
    {
        insert(
            &mut self.networks,
            "network",
            name,
            entry("network", name, move |c: C, vb| Ok(Box::new(constructor(c, vb)?) as Box<dyn Network>)),
        )
    }

    /// Registers a training recipe: `name`, its config type `C` (the run's `[recipe] config` table,
    /// with defaults for omitted fields), and a constructor from that config and the run's shared
    /// settings.
    pub fn register_recipe<C, R, F>(&mut self, name: &str, constructor: F) -> Result<()>
    where
        C: DeserializeOwned + Serialize + 'static,
        R: Recipe + 'static,
        F: Fn(C, &RecipeSetup) -> Result<R> + Send + Sync + 'static,
    {
        let n = name.to_string();
        let build: BuildRecipe = Box::new(move |value, setup| {
            Ok(Box::new(constructor(parse_config::<C>("recipe", &n, value)?, setup)?) as Box<dyn Recipe>)
        });
        insert(&mut self.recipes, "recipe", name, Entry { build, resolve: resolver::<C>("recipe", name) })
    }

    /// Builds the recipe a spec names for a run with the shared settings `setup`.
    pub fn build_recipe(&self, spec: &ModelSpec, setup: &RecipeSetup) -> Result<Box<dyn Recipe>> {
        (lookup(&self.recipes, "recipe", &spec.plugin)?.build)(&spec.config, setup)
    }

    /// The recipe spec with every default filled in.
    pub fn resolve_recipe(&self, spec: &ModelSpec) -> Result<ModelSpec> {
        resolve_in(&self.recipes, "recipe", spec)
    }

    /// [`Registry::resolve`], with the config fields the user left out that the plugin has and
    /// `context` knows (see [`BuildContext`]) filled from the context.
    pub fn resolve_in_context(&self, kind: NetworkKind, spec: &ModelSpec, context: &BuildContext) -> Result<ModelSpec> {
        let resolved = self.resolve(kind, spec)?;
        let (Some(given), Some(defaults)) = (spec.config.as_object(), resolved.config.as_object()) else {
            return Ok(resolved);
        };
        let mut config = given.clone();
        // A packing discriminator's plugin sees samples `m` times as wide.
        let context = match spec.packing() {
            Some(m) => {
                &BuildContext { sample_shape: crate::pack::packed_shape(&context.sample_shape, m), ..context.clone() }
            }
            None => context,
        };
        for (field, value) in context.fields(kind) {
            if !given.contains_key(field) && defaults.contains_key(field) {
                config.insert(field.to_string(), value);
            }
        }
        if config.len() == given.len() {
            return Ok(resolved);
        }
        self.resolve(kind, &ModelSpec { config: config.into(), ..spec.clone() })
    }

    /// Builds a network of role `kind` from a spec. Its variables are created through `vb`.
    pub fn build(&self, kind: NetworkKind, spec: &ModelSpec, vb: VarBuilder) -> Result<Model> {
        Ok(match kind {
            NetworkKind::Generator => Model::Generator(self.build_generator(spec, vb)?),
            NetworkKind::Discriminator => Model::Discriminator(self.build_discriminator(spec, vb)?),
            NetworkKind::Network => {
                Model::Network((lookup(&self.networks, "network", &spec.plugin)?.build)(&spec.config, vb)?)
            }
        })
    }

    /// The spec with every default filled in, for a network of role `kind`.
    pub fn resolve(&self, kind: NetworkKind, spec: &ModelSpec) -> Result<ModelSpec> {
        match kind {
            NetworkKind::Generator => self.resolve_generator(spec),
            NetworkKind::Discriminator => self.resolve_discriminator(spec),
            NetworkKind::Network => resolve_in(&self.networks, "network", spec),
        }
    }

    /// Builds the generator a spec names. Its variables are created through `vb`.
    pub fn build_generator(&self, spec: &ModelSpec, vb: VarBuilder) -> Result<Box<dyn Generator>> {
        (lookup(&self.generators, "generator", &spec.plugin)?.build)(&spec.config, vb)
    }

    /// Builds the discriminator a spec names. Its variables are created through `vb`.
    pub fn build_discriminator(&self, spec: &ModelSpec, vb: VarBuilder) -> Result<Box<dyn Discriminator>> {
        let d = (lookup(&self.discriminators, "discriminator", &spec.plugin)?.build)(&spec.config, vb)?;
        match spec.packing() {
            Some(m) => Ok(Box::new(crate::pack::Packed::new(d, m)?)),
            None => Ok(d),
        }
    }

    /// The spec with every default filled in, as the generator plugin reads it. Fails on a bad config.
    pub fn resolve_generator(&self, spec: &ModelSpec) -> Result<ModelSpec> {
        resolve_in(&self.generators, "generator", spec)
    }

    /// The spec with every default filled in, as the discriminator plugin reads it.
    pub fn resolve_discriminator(&self, spec: &ModelSpec) -> Result<ModelSpec> {
        resolve_in(&self.discriminators, "discriminator", spec)
    }

    /// The role a run's `[generator]` or `[discriminator]` table (`kind`) is built in: `kind` when its
    /// plugin is registered there, [`NetworkKind::Network`] when it is registered only as a network
    /// (the image-to-image translators of translation recipes), `kind` otherwise (whose lookup then
    /// reports the unknown plugin).
    pub fn role_of(&self, kind: NetworkKind, spec: &ModelSpec) -> NetworkKind {
        let table_has = match kind {
            NetworkKind::Generator => self.generators.contains_key(&spec.plugin),
            NetworkKind::Discriminator => self.discriminators.contains_key(&spec.plugin),
            NetworkKind::Network => true,
        };
        if !table_has && self.networks.contains_key(&spec.plugin) {
            NetworkKind::Network
        } else {
            kind
        }
    }

    /// Names of the registered generators, sorted.
    pub fn generator_names(&self) -> Vec<&str> {
        self.generators.keys().map(String::as_str).collect()
    }

    /// Names of the registered discriminators, sorted.
    pub fn discriminator_names(&self) -> Vec<&str> {
        self.discriminators.keys().map(String::as_str).collect()
    }
}

fn insert<V>(map: &mut BTreeMap<String, V>, kind: &'static str, name: &str, e: V) -> Result<()> {
    if map.contains_key(name) {
        return Err(Error::DuplicatePlugin { kind, name: name.to_string() });
    }
    map.insert(name.to_string(), e);
    Ok(())
}

/// `spec` with every default filled in by the resolver registered in `map`.
fn resolve_in<B>(map: &BTreeMap<String, Entry<B>>, kind: &'static str, spec: &ModelSpec) -> Result<ModelSpec> {
    check_pack(kind, spec)?;
    let config = (lookup(map, kind, &spec.plugin)?.resolve)(&spec.config)?;
    Ok(ModelSpec { config, ..spec.clone() })
}

/// Refuses a `pack` on a spec of any role but a discriminator's, and a pack of no samples: every
/// resolver checks it, so no path builds a spec whose packing would be ignored.
fn check_pack(kind: &'static str, spec: &ModelSpec) -> Result<()> {
    match spec.pack {
        Some(0) => Err(Error::InvalidInput("`pack` must be at least 1 sample a pack".into())),
        Some(_) if kind != "discriminator" => Err(Error::InvalidInput(format!(
            "`pack` applies to discriminators only, not to the {kind} `{}`",
            spec.plugin
        ))),
        _ => Ok(()),
    }
}

fn lookup<'a, V>(map: &'a BTreeMap<String, V>, kind: &'static str, name: &str) -> Result<&'a V> {
    map.get(name).ok_or_else(|| Error::UnknownPlugin {
        kind,
        name: name.to_string(),
        known: map.keys().cloned().collect::<Vec<_>>().join(", "),
    })
}
