//! The app backend's REST endpoints. Each endpoint is written once and mounted at every path a
//! seed documents for it, so each seed's frontend finds it where it looks.

pub mod admin;
pub mod auth;
pub mod conversations;
pub mod error;
pub mod extract;
pub mod keys;
pub mod limits;
pub mod llm;
pub mod mem0;
pub mod memories;
pub mod models;
pub mod prompts;
pub mod sessions;
pub mod thread_chat;
pub mod threads;
pub mod usage;

use std::sync::Arc;

use axum::routing::{delete, get, post};
use axum::Router;

use crate::state::AppState;

pub fn router() -> Router<Arc<AppState>> {
    let me = get(auth::me).put(auth::update_me).patch(auth::update_me);
    let mut router = Router::new();
    // Seeds 001, 002 and 003 under /api/v1/auth; seed 004 under /auth.
    for base in ["/api/v1/auth", "/auth"] {
        router = router
            .route(&format!("{base}/register"), post(auth::register))
            .route(&format!("{base}/signup"), post(auth::register))
            .route(&format!("{base}/login"), post(auth::login))
            .route(&format!("{base}/signin"), post(auth::login))
            .route(&format!("{base}/token"), post(auth::token))
            .route(&format!("{base}/refresh"), post(auth::refresh))
            .route(&format!("{base}/logout"), post(auth::logout))
            .route(&format!("{base}/signout"), post(auth::logout))
            .route(&format!("{base}/me"), me.clone())
            .route(
                &format!("{base}/change-password"),
                post(auth::change_password),
            )
            .route(
                &format!("{base}/reset-password"),
                post(auth::reset_password),
            )
            .route(
                &format!("{base}/reset-password/confirm"),
                post(auth::reset_password),
            )
            .route(
                &format!("{base}/oauth/{{provider}}"),
                post(auth::sign_in_with),
            )
            .route(
                &format!("{base}/verify-email"),
                post(auth::verify_email).get(auth::verify_email_link),
            )
            .route(
                &format!("{base}/verify-email/request"),
                post(auth::request_verification),
            )
            .route(
                &format!("{base}/send-verification-email"),
                post(auth::request_verification),
            )
            .route(&format!("{base}/health"), get(auth::health));
    }
    router
        .route("/users/me", me)
        .route("/api/v1/keys", post(keys::create).get(keys::list))
        .route("/api/v1/keys/{id}", delete(keys::revoke))
        .route("/api/v1/admin/users", get(admin::list_users))
        .route("/api/v1/admin/users/{user_id}", delete(admin::delete_user))
        // Login sessions; seed 002's README gives /admin/sessions to chat sessions.
        .route("/api/v1/admin/login-sessions", get(admin::list_sessions))
        .route("/api/v1/admin/sessions", get(sessions::admin_list))
        .route(
            "/api/v1/admin/users/{user_id}/limits",
            get(limits::get_user)
                .put(limits::put_user)
                .delete(limits::delete_user),
        )
        .route(
            "/api/v1/admin/keys/{key_id}/limits",
            get(limits::get_key)
                .put(limits::put_key)
                .delete(limits::delete_key),
        )
        .route("/api/v1/limits", get(limits::mine))
        // Seeds 001 and 002's chat and sessions (`{id}` is 002's user in the path).
        .route("/", get(sessions::root))
        .route("/api/v1/health", get(sessions::chat_health))
        .route("/api/v1/chat/health", get(sessions::chat_health))
        .route("/api/v1/chat", post(sessions::chat_001))
        .route("/api/v1/chat/stream", post(sessions::stream_001))
        .route("/v1/memories/", get(mem0::list).delete(mem0::delete_all))
        .route("/v1/memories", get(mem0::list).delete(mem0::delete_all))
        .route(
            "/v1/memories/{id}/",
            get(mem0::get).put(mem0::update).delete(mem0::delete),
        )
        .route(
            "/v1/memories/{id}",
            get(mem0::get).put(mem0::update).delete(mem0::delete),
        )
        .route("/v1/memories/{id}/history/", get(mem0::history))
        .route("/v1/memories/{id}/history", get(mem0::history))
        .route("/api/v1/memories/search", post(memories::search_001))
        .route("/api/v1/memories", delete(memories::delete_001))
        .route(
            "/api/v1/chat/{id}/memories/search",
            post(memories::search_002),
        )
        .route("/api/v1/chat/{id}/memories", delete(memories::delete_002))
        .route("/api/v1/chat/{id}", post(sessions::chat_002))
        .route("/api/v1/chat/{id}/new", post(sessions::new_002))
        .route(
            "/api/v1/chat/{id}/new/stream",
            post(sessions::new_stream_002),
        )
        .route(
            "/api/v1/chat/{id}/sessions",
            get(sessions::list_002).post(sessions::create_002),
        )
        .route(
            "/api/v1/chat/{id}/sessions/{session_id}",
            get(sessions::get_002)
                .put(sessions::update_002)
                .delete(sessions::delete_002),
        )
        .route(
            "/api/v1/chat/{id}/{session_id}",
            post(sessions::continue_002),
        )
        .route(
            "/api/v1/chat/{id}/{session_id}/stream",
            post(sessions::continue_stream_002),
        )
        // Seed 004's conversations and chat (integer ids).
        .route("/chat/", post(conversations::send))
        .route("/chat", post(conversations::send))
        .route(
            "/conversations/",
            get(conversations::list).post(conversations::create),
        )
        .route(
            "/conversations",
            get(conversations::list).post(conversations::create),
        )
        .route("/conversations/{id}/messages", get(conversations::messages))
        .route(
            "/conversations/{id}/rename",
            axum::routing::put(conversations::rename),
        )
        .route("/conversations/{id}", delete(conversations::delete))
        // Seed 003's threads, chat stream, model lists and spend.
        .route("/api/v1/threads", get(threads::list).post(threads::create))
        .route("/api/v1/threads/", get(threads::list).post(threads::create))
        .route(
            "/api/v1/threads/{id}",
            get(threads::detail)
                .patch(threads::update)
                .delete(threads::delete),
        )
        .route(
            "/api/v1/threads/{id}/generate-title",
            post(threads::generate_title),
        )
        .route("/api/v1/chat/{id}/send", post(thread_chat::send))
        .route(
            "/api/v1/chat/{id}/regenerate",
            post(thread_chat::regenerate),
        )
        .route("/api/v1/llm/models", get(llm::models))
        .route("/api/v1/llm/providers", get(llm::providers))
        .route("/api/v1/auth/usage", get(threads::spend))
        // Seed 000's prompt library (its frontend writes no trailing slash; both are served).
        .route("/api/prompts", get(prompts::list).post(prompts::create))
        .route("/api/prompts/", get(prompts::list).post(prompts::create))
        .route(
            "/api/prompts/{id}",
            get(prompts::get)
                .put(prompts::replace)
                .delete(prompts::delete),
        )
        .route("/models", get(models::catalog))
        .route(
            "/chat/messages/{message_id}/usage-details",
            get(usage::message_details),
        )
        .route(
            "/chat/{conversation_id}/usage-details",
            get(usage::conversation_details),
        )
        .route("/api/v1/usage", get(usage::summary))
        .route("/api/v1/usage/records", get(usage::records))
        .route("/api/v1/keys/{id}/usage", get(usage::key_summary))
        .route("/api/v1/admin/usage", get(usage::admin_summary))
        .route("/api/v1/admin/usage/records", get(usage::admin_records))
}
