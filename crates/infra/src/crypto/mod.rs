pub mod cipher;
pub mod hasher;
pub mod tokens;
