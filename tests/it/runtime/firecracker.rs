//! Tier 3: the Firecracker backend against the official API description (being written).
