pub mod cipher;
pub mod hasher;
pub mod opaque;
pub mod tokens;
