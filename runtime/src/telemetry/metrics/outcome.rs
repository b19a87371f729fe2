//! How an invocation ended, as the `outcome` label of
//! `wisp_invocation_outcomes_total` counts it: the class of the function's
//! own status, or one of Wisp's refusals and kills by name.

/// How an invocation ended. A status the function answered itself counts
/// by its class (a function answering 503 is `5xx`); Wisp's own refusals
/// and the limits it enforces count by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The function answered 1xx.
    Informational,
    /// The function answered 2xx.
    Success,
    /// The function answered 3xx.
    Redirection,
    /// The function answered 4xx, or Wisp refused a bad request (400, 404,
    /// 408).
    ClientError,
    /// The function answered 5xx (or a status past 599), or Wisp could not
    /// start it (500) or its command failed (502).
    ServerError,
    /// 413: the request body was larger than `max_request_body`.
    TooLarge,
    /// 429: `max_instances` busy and `max_queue` full, or `queue_timeout`.
    TooManyRequests,
    /// 503: the server-wide instance pool or body buffer was full.
    Unavailable,
    /// 504: no response within `timeout` (or the trigger's deadline).
    TimedOut,
    /// The guest failed an allocation past its `memory` limit.
    Memory,
    /// The guest trapped (panic, abort, stack overflow …), or returned
    /// without a response.
    Trap,
    /// 508: the guest computed for longer than `cpu_time`.
    CpuTime,
    /// 499: whoever waited went away before the response was complete.
    ClientClosed,
    /// 429: the function spent its `budget` of GB-seconds in the last hour.
    Budget,
}

impl Outcome {
    pub const ALL: [Outcome; 14] = [
        Outcome::Informational,
        Outcome::Success,
        Outcome::Redirection,
        Outcome::ClientError,
        Outcome::ServerError,
        Outcome::TooLarge,
        Outcome::TooManyRequests,
        Outcome::Unavailable,
        Outcome::TimedOut,
        Outcome::Memory,
        Outcome::Trap,
        Outcome::CpuTime,
        Outcome::ClientClosed,
        Outcome::Budget,
    ];

    /// The class of a status the function itself answered.
    pub fn of_status(status: u16) -> Outcome {
        match status {
            100..=199 => Outcome::Informational,
            200..=299 => Outcome::Success,
            300..=399 => Outcome::Redirection,
            400..=499 => Outcome::ClientError,
            _ => Outcome::ServerError,
        }
    }

    /// The `outcome` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Informational => "1xx",
            Outcome::Success => "2xx",
            Outcome::Redirection => "3xx",
            Outcome::ClientError => "4xx",
            Outcome::ServerError => "5xx",
            Outcome::TooLarge => "413",
            Outcome::TooManyRequests => "429",
            Outcome::Unavailable => "503",
            Outcome::TimedOut => "504",
            Outcome::Memory => "memory",
            Outcome::Trap => "trap",
            Outcome::CpuTime => "cpu_time",
            Outcome::ClientClosed => "client_closed",
            Outcome::Budget => "budget",
        }
    }

    /// Position in [`Outcome::ALL`], for per-outcome counters.
    pub fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_count_by_their_class() {
        let cases = [
            (100, "1xx"),
            (101, "1xx"),
            (199, "1xx"),
            (200, "2xx"),
            (204, "2xx"),
            (299, "2xx"),
            (300, "3xx"),
            (302, "3xx"),
            (304, "3xx"),
            (399, "3xx"),
            (400, "4xx"),
            (404, "4xx"),
            (413, "4xx"),
            (429, "4xx"),
            (499, "4xx"),
            (500, "5xx"),
            (503, "5xx"),
            (504, "5xx"),
            (599, "5xx"),
            (600, "5xx"),
            (999, "5xx"),
        ];
        for (status, class) in cases {
            assert_eq!(
                Outcome::of_status(status).as_str(),
                class,
                "status {status}"
            );
        }
    }

    #[test]
    fn outcomes_index_their_table_and_have_distinct_labels() {
        let mut labels = std::collections::HashSet::new();
        for (i, o) in Outcome::ALL.iter().enumerate() {
            assert_eq!(o.index(), i);
            assert!(labels.insert(o.as_str()), "{} twice", o.as_str());
        }
    }
}
