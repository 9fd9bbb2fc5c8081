//! What a stage declares about itself: its params, inputs and outputs (for validation hints,
//! `s2r-pipe kinds` and the run's binding checks).

/// One parameter a stage accepts (used for validation hints and `--help`-like listings).
#[derive(Debug, Clone, Copy)]
pub struct ParamDoc {
    /// Param name.
    pub name: &'static str,
    /// Type in words (`integer`, `string`, `list of strings`...).
    pub ty: &'static str,
    /// Default as YAML, or `None` when required.
    pub default: Option<&'static str>,
    /// One line of help.
    pub help: &'static str,
}

/// One named input a stage accepts.
#[derive(Debug, Clone, Copy)]
pub struct InputDoc {
    /// Input name.
    pub name: &'static str,
    /// Whether the stage cannot run without it.
    pub required: bool,
    /// Whether several artifacts may be bound (e.g. all instances of a matrix stage).
    pub many: bool,
    /// One line of help.
    pub help: &'static str,
}

/// One named output a stage produces.
#[derive(Debug, Clone, Copy)]
pub struct OutputDoc {
    /// Output name.
    pub name: &'static str,
    /// One line of help.
    pub help: &'static str,
}
