// The tables of migrations/sqlite, written by hand to match them.

diesel::table! {
    users (id) {
        id -> Text,
        username -> Text,
        email -> Nullable<Text>,
        password_hash -> Text,
        data -> Text,
        created_at -> BigInt,
        role -> Text,
    }
}

diesel::table! {
    data_keys (user_id) {
        user_id -> Text,
        id -> Text,
        master_key_id -> Text,
        wrapped_key -> Binary,
        created_at -> BigInt,
    }
}

diesel::table! {
    secrets (user_id, name) {
        user_id -> Text,
        name -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
        version -> BigInt,
        oldest_version -> BigInt,
        metadata -> Text,
        deleted_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    secret_versions (user_id, name, version) {
        user_id -> Text,
        name -> Text,
        version -> BigInt,
        key_id -> Text,
        ciphertext -> Binary,
        created_at -> BigInt,
    }
}

diesel::table! {
    audit_events (id) {
        id -> Text,
        at -> BigInt,
        user_id -> Nullable<Text>,
        client_ip -> Nullable<Text>,
        event -> Text,
        outcome -> Text,
    }
}

diesel::table! {
    sessions (id) {
        id -> Text,
        user_id -> Text,
        kind -> Text,
        cookie_hash -> Nullable<Text>,
        created_at -> BigInt,
        last_used_at -> BigInt,
        expires_at -> BigInt,
        client_ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
    }
}

diesel::table! {
    refresh_tokens (token_hash) {
        token_hash -> Text,
        session_id -> Text,
        created_at -> BigInt,
        spent_at -> Nullable<BigInt>,
    }
}

diesel::joinable!(data_keys -> users (user_id));
diesel::joinable!(secrets -> users (user_id));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(refresh_tokens -> sessions (session_id));
diesel::allow_tables_to_appear_in_same_query!(
    users,
    data_keys,
    secrets,
    secret_versions,
    audit_events,
    sessions,
    refresh_tokens
);
