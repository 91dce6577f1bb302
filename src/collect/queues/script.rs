//! A Lua script sent with EVALSHA inside the collector's pipeline. `SCRIPT LOAD` goes first
//! in the same pipeline, so a restarted or failed-over server never costs a second round trip.

use std::sync::OnceLock;

/// A script and its SHA1.
pub struct LuaScript {
    src: &'static str,
    sha: OnceLock<String>,
}

impl LuaScript {
    /// Declares a script; the hash is computed on first use.
    pub const fn new(src: &'static str) -> Self {
        Self { src, sha: OnceLock::new() }
    }

    fn sha(&self) -> &str {
        self.sha.get_or_init(|| sha1_of(self.src))
    }

    /// Adds `SCRIPT LOAD` (one command).
    pub fn load(&self, pipe: &mut redis::Pipeline) {
        pipe.cmd("SCRIPT").arg("LOAD").arg(self.src);
    }

    /// Adds one `EVALSHA` with keys and arguments (one command).
    pub fn call<A: redis::ToRedisArgs>(&self, pipe: &mut redis::Pipeline, keys: &[String], args: &[A]) {
        pipe.add_command(self.cmd(keys, args));
    }

    /// One `EVALSHA` with keys and arguments, for a later round of a read.
    pub fn cmd<A: redis::ToRedisArgs>(&self, keys: &[String], args: &[A]) -> redis::Cmd {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(self.sha()).arg(keys.len());
        for k in keys {
            cmd.arg(k);
        }
        for a in args {
            cmd.arg(a);
        }
        cmd
    }
}

/// SHA1 of a script's text, as Redis computes it.
fn sha1_of(src: &str) -> String {
    redis::Script::new(src).get_hash().to_string()
}

/// Declares a `static` [`LuaScript`] from files next to the module, with `prelude.lua` (the
/// helpers every script shares) in front of them.
macro_rules! lua_script {
    ($name:ident, $($file:literal),+) => {
        static $name: $crate::collect::queues::script::LuaScript =
            $crate::collect::queues::script::LuaScript::new(concat!(
                include_str!("prelude.lua"),
                $(include_str!($file)),+
            ));
    };
}
pub(crate) use lua_script;
