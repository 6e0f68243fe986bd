//! Ordered levels: clearances of people and classifications of data. Comparing two levels compares
//! their ranks, never their spelling.

/// Which ordered list a level belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LevelKind {
    Clearance,
    Classification,
}

impl LevelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LevelKind::Clearance => "clearance",
            LevelKind::Classification => "classification",
        }
    }
}

pub const DEFAULT_CLEARANCES: &[&str] = &["public", "developer", "maintainer", "admin"];
pub const DEFAULT_CLASSIFICATIONS: &[&str] = &["public", "internal", "confidential", "secret"];

/// The ordered level lists, lowest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Levels {
    pub clearances: Vec<String>,
    pub classifications: Vec<String>,
}

impl Default for Levels {
    fn default() -> Self {
        Levels {
            clearances: DEFAULT_CLEARANCES.iter().map(|s| s.to_string()).collect(),
            classifications: DEFAULT_CLASSIFICATIONS.iter().map(|s| s.to_string()).collect(),
        }
    }
}

impl Levels {
    pub fn list(&self, kind: LevelKind) -> &[String] {
        match kind {
            LevelKind::Clearance => &self.clearances,
            LevelKind::Classification => &self.classifications,
        }
    }

    pub fn rank(&self, kind: LevelKind, name: &str) -> Option<usize> {
        self.list(kind).iter().position(|l| l == name)
    }

    /// Which list a comparison is about: named by the attribute (`user_clearance`,
    /// `data_classification`), or else by the one list the literal belongs to.
    pub fn kind_for(&self, attribute: Option<&str>, literal: &str) -> Option<LevelKind> {
        if let Some(attribute) = attribute {
            if attribute.contains("clearance") {
                return Some(LevelKind::Clearance);
            }
            if attribute.contains("classification") {
                return Some(LevelKind::Classification);
            }
        }
        match (self.rank(LevelKind::Clearance, literal), self.rank(LevelKind::Classification, literal)) {
            (Some(_), None) => Some(LevelKind::Clearance),
            (None, Some(_)) => Some(LevelKind::Classification),
            _ => None,
        }
    }
}
