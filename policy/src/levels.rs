//! Ordered levels: clearances of people and classifications of data. Comparing two levels compares
//! their ranks, never their spelling.

/// Which ordered list a level belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LevelKind {
    Clearance,
    Classification,
}

impl LevelKind {
    /// The list an attribute's name says it holds a level of.
    pub fn from_attribute(attribute: &str) -> Option<LevelKind> {
        if attribute.contains("clearance") {
            Some(LevelKind::Clearance)
        } else if attribute.contains("classification") {
            Some(LevelKind::Classification)
        } else {
            None
        }
    }

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
        attribute.and_then(LevelKind::from_attribute).or_else(|| self.kind_of_name(literal))
    }

    /// The one list a level name belongs to (none when it is in both or neither).
    pub fn kind_of_name(&self, literal: &str) -> Option<LevelKind> {
        match (self.rank(LevelKind::Clearance, literal), self.rank(LevelKind::Classification, literal)) {
            (Some(_), None) => Some(LevelKind::Clearance),
            (None, Some(_)) => Some(LevelKind::Classification),
            _ => None,
        }
    }
}
