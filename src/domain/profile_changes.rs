//! An edit to a user's profile.

use super::{Bio, UserName};
use crate::error::{Error, Result};

/// A new name, a new bio, or both: never neither, so an edit always edits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileChanges {
    name: Option<UserName>,
    bio: Option<Bio>,
}

impl ProfileChanges {
    /// Parses whichever fields were given; giving none is `BAD_USER_INPUT` on `input`.
    pub fn parse(name: Option<&str>, bio: Option<&str>) -> Result<Self> {
        if name.is_none() && bio.is_none() {
            return Err(Error::bad_input("input", "give a new name or bio"));
        }
        Ok(ProfileChanges { name: name.map(UserName::parse).transpose()?, bio: bio.map(Bio::parse).transpose()? })
    }

    /// The new name, if it changes.
    pub fn name(&self) -> Option<&UserName> {
        self.name.as_ref()
    }

    /// The new bio, if it changes (an empty one clears it).
    pub fn bio(&self) -> Option<&Bio> {
        self.bio.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An empty edit is refused on `input`; each field is checked by its own rule.
    #[test]
    fn needs_one_valid_field() {
        assert!(matches!(ProfileChanges::parse(None, None), Err(Error::BadInput { field: "input", .. })));
        assert!(matches!(ProfileChanges::parse(Some("  "), None), Err(Error::BadInput { field: "name", .. })));
        assert!(matches!(ProfileChanges::parse(None, Some("\u{202E}")), Err(Error::BadInput { field: "bio", .. })));
        let bio = ProfileChanges::parse(None, Some("")).ok();
        assert_eq!(bio.as_ref().and_then(ProfileChanges::bio).map(Bio::as_str), Some(""));
        assert!(bio.as_ref().and_then(ProfileChanges::name).is_none());
    }
}
