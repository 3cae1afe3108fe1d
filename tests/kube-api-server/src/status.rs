//! HTTP responses in kube-apiserver's shape: JSON bodies, and `Status` objects for every
//! refusal, so clients report this server's errors exactly as they report a real cluster's.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};

/// The response type of every handler in this crate.
pub type HttpResponse = Response<Full<Bytes>>;

/// A JSON body with the given status code.
pub fn json(code: StatusCode, body: &Value) -> HttpResponse {
    raw(code, Bytes::from(body.to_string()))
}

/// An already-serialized JSON body with the given status code.
pub fn raw(code: StatusCode, body: Bytes) -> HttpResponse {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = code;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A failure `Status` whose `reason` is the one kube-apiserver uses for `code`.
pub fn failure(code: StatusCode, message: impl Into<String>) -> HttpResponse {
    json(code, &failure_body(code, message.into(), None))
}

/// A failure `Status` with `details` (name, kind, causes), as kube-apiserver sends for
/// NotFound, AlreadyExists and apply conflicts.
pub fn failure_with_details(code: StatusCode, message: String, details: Value) -> HttpResponse {
    json(code, &failure_body(code, message, Some(details)))
}

fn failure_body(code: StatusCode, message: String, details: Option<Value>) -> Value {
    let mut body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason(code),
        "code": code.as_u16(),
    });
    if let Some(details) = details {
        body["details"] = details;
    }
    body
}

/// The `reason` kube-apiserver pairs with each status code.
pub fn reason(code: StatusCode) -> &'static str {
    match code.as_u16() {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        406 => "NotAcceptable",
        409 => "Conflict",
        410 => "Expired",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        504 => "Timeout",
        503 => "ServiceUnavailable",
        _ => "InternalError",
    }
}
