//! tether: the native async client.
