//! Opening the zenoh session a bridge runs on.

use crate::Error;

/// Where a bridge's zenoh session listens and whom it connects to: zenoh peer
/// mode, with multicast scouting off, so that it talks to exactly the endpoints
/// given (`"tcp/0.0.0.0:7447"`, `"tcp/10.0.0.2:7447"`). One side listens, the
/// other connects; either side may be started first, and a connecting side
/// retries until the listener is there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Endpoints {
    /// Endpoints to listen on.
    pub listen: Vec<String>,
    /// Endpoints to connect to.
    pub connect: Vec<String>,
}

impl Endpoints {
    /// The zenoh configuration: peer mode, multicast scouting off, these
    /// endpoints, and connecting retried forever (a peer may start later or
    /// restart).
    pub fn config(&self) -> Result<zenoh::Config, Error> {
        let mut c = zenoh::Config::default();
        let json = |v: &[String]| serde_json_list(v);
        let set = |c: &mut zenoh::Config, key: &str, value: String| {
            c.insert_json5(key, &value)
                .map_err(|e| Error::Config(format!("{key} = {value}: {e}")))
        };
        set(&mut c, "mode", "\"peer\"".into())?;
        set(&mut c, "scouting/multicast/enabled", "false".into())?;
        set(&mut c, "listen/endpoints", json(&self.listen))?;
        set(&mut c, "connect/endpoints", json(&self.connect))?;
        // Keep trying to reach the peer: it may start later, or restart.
        set(&mut c, "connect/timeout_ms", "-1".into())?;
        set(&mut c, "connect/exit_on_failure", "false".into())?;
        set(
            &mut c,
            "connect/retry",
            r#"{"period_init_ms": 50, "period_max_ms": 500, "period_increase_factor": 2}"#.into(),
        )?;
        Ok(c)
    }

    /// Open a zenoh session on these endpoints.
    pub fn open(&self) -> Result<zenoh::Session, Error> {
        use zenoh::Wait;
        if self.listen.is_empty() && self.connect.is_empty() {
            return Err(Error::Config(
                "no endpoint: give at least one to listen on or to connect to".into(),
            ));
        }
        zenoh::open(self.config()?)
            .wait()
            .map_err(|e| Error::Zenoh(format!("opening a session on {self:?}: {e}")))
    }
}

/// `["a", "b"]` as JSON (endpoints hold no quote or backslash; any that do are
/// escaped).
fn serde_json_list(v: &[String]) -> String {
    let items: Vec<String> = v
        .iter()
        .map(|s| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!("[{}]", items.join(","))
}
