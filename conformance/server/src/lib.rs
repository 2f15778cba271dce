//! tether-server: the reference server.
