//! Owns the ordering rule of the ZooKeeper election: members are ephemeral
//! sequential znodes `member-<10-digit sequence>`; the lowest sequence leads and
//! every other member watches only the member just before it, so a leader's
//! departure wakes exactly one node (no herd effect).

/// Prefix of every member znode's name.
pub const MEMBER_PREFIX: &str = "member-";

/// Where a member stands among the current members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// Lowest sequence: this member leads.
    Leader,
    /// Not lowest: watch `predecessor` (a child name) and wait.
    Follower {
        /// The member just before this one.
        predecessor: String,
        /// The member that currently leads.
        leader: String,
    },
    /// This member's znode is not among the children (expired or deleted).
    Absent,
}

/// The sequence number of a member znode name; `None` for foreign children.
pub fn sequence_of(name: &str) -> Option<u64> {
    name.strip_prefix(MEMBER_PREFIX)?.parse().ok()
}

/// Member names ordered by sequence, foreign children ignored.
pub fn ordered_members(children: &[String]) -> Vec<&str> {
    let mut members: Vec<(u64, &str)> = children
        .iter()
        .filter_map(|name| Some((sequence_of(name)?, name.as_str())))
        .collect();
    members.sort_unstable();
    members.into_iter().map(|(_, name)| name).collect()
}

/// Where `own` stands among `children`.
pub fn standing(own: &str, children: &[String]) -> Standing {
    let members = ordered_members(children);
    match members.iter().position(|name| *name == own) {
        None => Standing::Absent,
        Some(0) => Standing::Leader,
        Some(index) => Standing::Follower {
            predecessor: members[index - 1].to_owned(),
            leader: members[0].to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_lowest_sequence_leads_whatever_the_listing_order() {
        let children = names(&[
            "member-0000000012",
            "member-0000000003",
            "member-0000000007",
        ]);
        assert_eq!(standing("member-0000000003", &children), Standing::Leader);
        assert_eq!(
            standing("member-0000000012", &children),
            Standing::Follower {
                predecessor: "member-0000000007".into(),
                leader: "member-0000000003".into()
            }
        );
    }

    #[test]
    fn a_missing_member_is_absent_and_foreign_children_are_ignored() {
        let children = names(&["lock", "member-0000000002", "member-x"]);
        assert_eq!(standing("member-0000000001", &children), Standing::Absent);
        assert_eq!(standing("member-0000000002", &children), Standing::Leader);
    }

    #[test]
    fn sequences_past_ten_digits_still_order_numerically() {
        let children = names(&["member-9999999999", "member-10000000000"]);
        assert_eq!(standing("member-9999999999", &children), Standing::Leader);
    }
}
