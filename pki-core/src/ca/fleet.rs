//! The state of one agent's leaf as the CA host sees it: what `issuer fleet` prints and the
//! service's `pki_agent_state` gauge exports, from one rule so the two never disagree.

use time::OffsetDateTime;

/// Refusals in a row after which an agent is failing.
pub const FAILING_REFUSALS: i64 = 3;

/// What an operator acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FleetState {
    /// Renewing on time.
    Ok,
    /// Due at 2/3 of the leaf's life and not renewed a tenth of the life later.
    RenewOverdue,
    /// In the last tenth of its life (the agents' danger window), or refused again and again.
    Failing,
    /// Its leaf ran out (or was superseded and nothing replaced it).
    Expired,
    /// Its leaf was revoked: the host re-enrols or leaves the cluster file.
    Revoked,
    /// The ledger holds no leaf for it.
    NeverEnrolled,
}

impl FleetState {
    /// Every state, in the order they are shown.
    pub const ALL: [FleetState; 6] = [
        FleetState::Ok,
        FleetState::RenewOverdue,
        FleetState::Failing,
        FleetState::Expired,
        FleetState::Revoked,
        FleetState::NeverEnrolled,
    ];

    /// As `issuer fleet` prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            FleetState::Ok => "ok",
            FleetState::RenewOverdue => "renew overdue",
            FleetState::Failing => "failing",
            FleetState::Expired => "expired",
            FleetState::Revoked => "revoked",
            FleetState::NeverEnrolled => "never enrolled",
        }
    }

    /// As a metric label value (`pki_agent_state{state="renew_overdue"}`).
    pub fn label(self) -> &'static str {
        match self {
            FleetState::RenewOverdue => "renew_overdue",
            FleetState::NeverEnrolled => "never_enrolled",
            other => other.as_str(),
        }
    }

    /// Whether someone has to act (`issuer fleet` exits 1): all but `ok` and `never enrolled`.
    /// An expired or revoked entry still in the cluster file cannot work: its host re-enrols
    /// or the entry leaves the file (a check on the exit status must not clear its alarm when
    /// a failing leaf runs out).
    pub fn needs_action(self) -> bool {
        !matches!(self, FleetState::Ok | FleetState::NeverEnrolled)
    }

    /// The state of a leaf with ledger `status` (`active`, `revoked`, ...) and validity
    /// `not_before`..`not_after`, whose agent was refused `refusals` times in a row.
    pub fn of(
        status: &str,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
        refusals: i64,
        now: OffsetDateTime,
    ) -> FleetState {
        match status {
            "revoked" => return FleetState::Revoked,
            "active" => {}
            _ => return FleetState::Expired,
        }
        if not_after <= now {
            return FleetState::Expired;
        }
        let life = not_after - not_before;
        // Due at 2/3 (the agents spread it by 5 %); overdue a tenth of the life later.
        let overdue_at = not_before + life * 2 / 3 + life / 10;
        let failing_at = not_after - life / 10;
        if now >= failing_at || refusals >= FAILING_REFUSALS {
            FleetState::Failing
        } else if now >= overdue_at {
            FleetState::RenewOverdue
        } else {
            FleetState::Ok
        }
    }
}

impl std::fmt::Display for FleetState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;

    #[test]
    fn a_leaf_moves_from_ok_to_overdue_to_failing_to_expired() {
        let start = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
        let end = start + Duration::seconds(300);
        let at = |s: i64| FleetState::of("active", start, end, 0, start + Duration::seconds(s));
        assert_eq!(at(0), FleetState::Ok);
        assert_eq!(at(229), FleetState::Ok);
        assert_eq!(at(231), FleetState::RenewOverdue);
        assert_eq!(at(269), FleetState::RenewOverdue);
        assert_eq!(at(271), FleetState::Failing);
        assert_eq!(at(300), FleetState::Expired);
        let now = start + Duration::seconds(10);
        assert_eq!(
            FleetState::of("active", start, end, 3, now),
            FleetState::Failing
        );
        assert_eq!(
            FleetState::of("revoked", start, end, 0, now),
            FleetState::Revoked
        );
        assert_eq!(
            FleetState::of("superseded", start, end, 0, now),
            FleetState::Expired
        );
        assert!(FleetState::Failing.needs_action() && FleetState::Expired.needs_action());
        assert!(FleetState::Revoked.needs_action() && !FleetState::NeverEnrolled.needs_action());
        assert_eq!(FleetState::RenewOverdue.label(), "renew_overdue");
    }
}
