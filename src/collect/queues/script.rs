//! A Lua script sent with EVALSHA inside the collector's pipeline. `SCRIPT LOAD` goes first
//! in the same pipeline, so a restarted or failed-over server never costs a second round trip.

use std::sync::LazyLock;

/// A script and its SHA1.
pub struct LuaScript {
    src: &'static str,
    sha: LazyLock<String, fn() -> String>,
}

impl LuaScript {
    /// Declares a script; the hash is computed on first use.
    pub const fn new(src: &'static str, sha: fn() -> String) -> Self {
        Self { src, sha: LazyLock::new(sha) }
    }

    /// Adds `SCRIPT LOAD` (one command).
    pub fn load(&self, pipe: &mut redis::Pipeline) {
        pipe.cmd("SCRIPT").arg("LOAD").arg(self.src);
    }

    /// Adds one `EVALSHA` with keys and arguments (one command).
    pub fn call<A: redis::ToRedisArgs>(&self, pipe: &mut redis::Pipeline, keys: &[String], args: &[A]) {
        let cmd = pipe.cmd("EVALSHA").arg(self.sha.as_str()).arg(keys.len());
        for k in keys {
            cmd.arg(k);
        }
        for a in args {
            cmd.arg(a);
        }
    }
}

/// SHA1 of a script's text, as Redis computes it.
pub fn sha1_of(src: &str) -> String {
    redis::Script::new(src).get_hash().to_string()
}

/// Declares a `static` [`LuaScript`] from a file next to the module.
macro_rules! lua_script {
    ($name:ident, $file:literal) => {
        static $name: $crate::collect::queues::script::LuaScript =
            $crate::collect::queues::script::LuaScript::new(include_str!($file), || {
                $crate::collect::queues::script::sha1_of(include_str!($file))
            });
    };
}
pub(crate) use lua_script;
