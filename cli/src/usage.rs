//! What a command's argument parser returns: its options or its help text, or a usage error
//! saying which command's help explains it. A leaf: the commands' parsers depend on it, and
//! `args.rs`, which dispatches to them, wraps what they return in its `Command`.

use std::fmt;

/// A command's parse: its help asked for, or its options.
#[derive(Debug)]
pub enum Parsed<T> {
    Help(&'static str),
    Options(T),
}

/// A usage error, and which command's help explains it.
#[derive(Debug)]
pub struct UsageError {
    pub message: String,
    pub command: Option<&'static str>,
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl UsageError {
    pub fn new(message: impl Into<String>, command: Option<&'static str>) -> Self {
        UsageError { message: message.into(), command }
    }

    /// Where to look for help.
    pub fn hint(&self) -> String {
        match self.command {
            Some(command) => format!("For more information, try 'symbiont {command} --help'."),
            None => "For more information, try 'symbiont --help'.".to_string(),
        }
    }
}
