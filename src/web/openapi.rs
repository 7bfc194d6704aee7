//! `GET /api/v1/openapi.json`: the OpenAPI 3 description of `/api/v1`, written by
//! hand next to the handlers in `api.rs` (keep the two in step).

use super::WebState;
use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

pub(super) async fn document(State(state): State<WebState>) -> Json<Value> {
    let server = format!(
        "{}/api/v1",
        state.engine().config().web.public_url.trim_end_matches('/')
    );
    Json(spec(&server))
}

fn error_response(description: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } })
}

fn json_response(description: &str, schema: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } } })
}

/// The document, with `server` as the base URL.
pub fn spec(server: &str) -> Value {
    let run_id = json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "integer", "minimum": 1 } });
    let query = |name: &str, description: &str, schema: Value| json!({ "name": name, "in": "query", "required": false, "description": description, "schema": schema });
    let states = json!([
        "requested",
        "refused",
        "awaiting_approval",
        "rejected",
        "expired",
        "queued",
        "running",
        "succeeded",
        "failed",
        "timed_out",
        "cancelled",
        "interrupted"
    ]);
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "ExecGov API",
            "version": "1.0.0",
            "description": "Runs, approvals and scripts of ExecGov, under the same rules as chat. \
                            Authenticate with a personal API token from the web UI (API tokens page): \
                            `Authorization: Bearer egv_…`. A run you may not see answers 404, like a missing one."
        },
        "servers": [{ "url": server }],
        "security": [{ "bearer": [] }],
        "paths": paths(&run_id, &query, &states),
        "components": components(&states),
    })
}

fn paths(run_id: &Value, query: &dyn Fn(&str, &str, Value) -> Value, states: &Value) -> Value {
    json!({
        "/runs": {
            "get": {
                "operationId": "listRuns",
                "summary": "Runs you may see, newest first; page on with `before` = `next_before`.",
                "parameters": [
                    query("script", "Only this script.", json!({ "type": "string" })),
                    query("person", "Only runs this configured person requested.", json!({ "type": "string" })),
                    query("state", "Only runs in this state.", json!({ "type": "string", "enum": states })),
                    query("from", "Requested on or after this day (UTC).", json!({ "type": "string", "format": "date" })),
                    query("to", "Requested on or before this day (UTC).", json!({ "type": "string", "format": "date" })),
                    query("before", "Only runs with a smaller id (keyset cursor).", json!({ "type": "integer", "minimum": 1 })),
                    query("limit", "Page size (1 to 200, default 50).", json!({ "type": "integer", "minimum": 1, "maximum": 200 }))
                ],
                "responses": {
                    "200": json_response("A page of runs.", "RunList"),
                    "400": error_response("A filter is malformed."),
                    "401": error_response("No valid API token.")
                }
            },
            "post": {
                "operationId": "startRun",
                "summary": "Ask for a run, as from the web (`web:local`): policy and approval apply as in chat.",
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/StartRun" } } } },
                "responses": {
                    "201": json_response("Accepted: queued, or waiting for approval.", "ReplyWithRun"),
                    "400": error_response("The arguments do not fit the script's parameters."),
                    "401": error_response("No valid API token."),
                    "403": json_response("Refused by policy (recorded as a refused run).", "Refusal"),
                    "404": error_response("No such script.")
                }
            }
        },
        "/runs/{id}": {
            "get": {
                "operationId": "getRun",
                "summary": "One run with its approvals, files and audit timeline.",
                "parameters": [run_id],
                "responses": {
                    "200": json_response("The run.", "RunDetail"),
                    "401": error_response("No valid API token."),
                    "404": error_response("No such run, or not one you may see.")
                }
            }
        },
        "/runs/{id}/decision": {
            "post": {
                "operationId": "decideRun",
                "summary": "Approve or deny a run waiting for approval.",
                "parameters": [run_id],
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Decision" } } } },
                "responses": {
                    "200": json_response("The decision was recorded.", "ReplyWithRun"),
                    "400": error_response("The body is malformed."),
                    "401": error_response("No valid API token."),
                    "404": error_response("No such run, or not one you may see."),
                    "409": error_response("Refused: not awaiting approval, not an approver, already decided, or the requester.")
                }
            }
        },
        "/runs/{id}/cancel": {
            "post": {
                "operationId": "cancelRun",
                "summary": "Withdraw a run that has not started, or stop a running one.",
                "parameters": [run_id],
                "responses": {
                    "200": json_response("The run was cancelled, or asked to stop.", "ReplyWithRun"),
                    "401": error_response("No valid API token."),
                    "404": error_response("No such run, or not one you may see."),
                    "409": error_response("Refused: not its requester or an approver of its script, or the run has already ended.")
                }
            }
        },
        "/scripts": {
            "get": {
                "operationId": "listScripts",
                "summary": "The catalogue, with what you may do.",
                "responses": {
                    "200": json_response("Every registered script.", "ScriptList"),
                    "401": error_response("No valid API token.")
                }
            }
        },
        "/scripts/{name}": {
            "get": {
                "operationId": "getScript",
                "summary": "One script.",
                "parameters": [{ "name": "name", "in": "path", "required": true, "schema": { "type": "string" } }],
                "responses": {
                    "200": json_response("The script.", "Script"),
                    "401": error_response("No valid API token."),
                    "404": error_response("No such script.")
                }
            }
        }
    })
}

fn components(states: &Value) -> Value {
    json!({
        "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "description": "An API token, `egv_…`." } },
        "schemas": {
            "Error": {
                "type": "object", "required": ["error", "status"],
                "properties": { "error": { "type": "string" }, "status": { "type": "integer" } }
            },
            "Run": {
                "type": "object",
                "required": ["id", "script", "state", "args", "requester", "place", "risk", "quorum", "created_at", "url"],
                "properties": {
                    "id": { "type": "integer" },
                    "script": { "type": "string" },
                    "state": { "type": "string", "enum": states },
                    "args": { "type": "object", "additionalProperties": true },
                    "requester": { "type": "string" },
                    "requester_person": { "type": "string", "nullable": true },
                    "place": { "type": "string", "description": "platform:channel where it was asked" },
                    "reason": { "type": "string", "nullable": true },
                    "risk": { "type": "string", "enum": ["low", "high"] },
                    "quorum": { "type": "integer" },
                    "expires_at": { "type": "integer", "nullable": true, "description": "unix ms" },
                    "created_at": { "type": "integer", "description": "unix ms" },
                    "queued_at": { "type": "integer", "nullable": true },
                    "started_at": { "type": "integer", "nullable": true },
                    "finished_at": { "type": "integer", "nullable": true },
                    "duration_ms": { "type": "integer", "nullable": true },
                    "exit_code": { "type": "integer", "nullable": true },
                    "error": { "type": "string", "nullable": true },
                    "result": { "nullable": true, "description": "the script's structured result (JSON)" },
                    "progress_pct": { "type": "integer", "nullable": true },
                    "progress_text": { "type": "string", "nullable": true },
                    "url": { "type": "string", "description": "the run's web page (sign-in needed)" }
                }
            },
            "RunDetail": {
                "allOf": [
                    { "$ref": "#/components/schemas/Run" },
                    {
                        "type": "object",
                        "properties": {
                            "approvals": { "type": "array", "items": {
                                "type": "object",
                                "properties": {
                                    "approver": { "type": "string" }, "approve": { "type": "boolean" },
                                    "reason": { "type": "string", "nullable": true }, "at": { "type": "integer" },
                                    "digest": { "type": "string" }
                                }
                            } },
                            "artifacts": { "type": "array", "items": {
                                "type": "object",
                                "properties": {
                                    "name": { "type": "string" }, "size": { "type": "integer" },
                                    "sha256": { "type": "string" }, "url": { "type": "string" }
                                }
                            } },
                            "timeline": { "type": "array", "items": {
                                "type": "object",
                                "properties": {
                                    "seq": { "type": "integer" }, "at": { "type": "integer" },
                                    "actor": { "type": "string" }, "action": { "type": "string" },
                                    "details": { "type": "object", "additionalProperties": true }, "hash": { "type": "string" }
                                }
                            } },
                            "output_tail": { "type": "string", "nullable": true },
                            "audit_link": { "type": "string" },
                            "retention": {
                                "type": "object",
                                "description": "what [retention] removed from the run and when (docs/retention.md)",
                                "properties": {
                                    "log_pruned_at": { "type": "integer", "nullable": true },
                                    "log_sha256": { "type": "string", "nullable": true },
                                    "log_bytes": { "type": "integer" },
                                    "files_pruned_at": { "type": "integer", "nullable": true },
                                    "output_pruned_at": { "type": "integer", "nullable": true },
                                    "notes": { "type": "array", "items": { "type": "string" } }
                                }
                            }
                        }
                    }
                ]
            },
            "RunList": {
                "type": "object", "required": ["runs"],
                "properties": {
                    "runs": { "type": "array", "items": { "$ref": "#/components/schemas/Run" } },
                    "next_before": { "type": "integer", "nullable": true, "description": "pass as `before` for the next page" }
                }
            },
            "StartRun": {
                "type": "object", "required": ["script"],
                "properties": {
                    "script": { "type": "string" },
                    "args": { "type": "object", "additionalProperties": { "oneOf": [{ "type": "string" }, { "type": "integer" }, { "type": "boolean" },
                        { "type": "object", "description": "A file parameter's file", "required": ["base64"], "properties": { "name": { "type": "string" }, "base64": { "type": "string" } } }] } }
                }
            },
            "Decision": {
                "type": "object", "required": ["decision"],
                "properties": {
                    "decision": { "type": "string", "enum": ["approve", "deny"] },
                    "reason": { "type": "string", "nullable": true },
                    "code": { "type": "string", "nullable": true, "description": "The approver's 6-digit authenticator code: needed to approve a critical run (step-up)." }
                }
            },
            "ReplyWithRun": {
                "type": "object", "required": ["message"],
                "properties": { "message": { "type": "string" }, "run": { "$ref": "#/components/schemas/Run" } }
            },
            "Refusal": {
                "type": "object", "required": ["error", "status"],
                "properties": { "error": { "type": "string" }, "status": { "type": "integer" }, "run": { "$ref": "#/components/schemas/Run" } }
            },
            "Param": {
                "type": "object", "required": ["name", "type", "required"],
                "properties": {
                    "name": { "type": "string" },
                    "type": { "type": "string", "enum": ["string", "int", "float", "bool", "enum", "date"] },
                    "required": { "type": "boolean" },
                    "default": { "nullable": true },
                    "description": { "type": "string" },
                    "choices": { "type": "array", "items": { "type": "string" } },
                    "min": { "type": "number", "nullable": true },
                    "max": { "type": "number", "nullable": true },
                    "pattern": { "type": "string", "nullable": true },
                    "max_len": { "type": "integer", "nullable": true }
                }
            },
            "Script": {
                "type": "object", "required": ["name", "risk", "params", "may_run"],
                "properties": {
                    "name": { "type": "string" },
                    "description": { "type": "string" },
                    "risk": { "type": "string", "enum": ["low", "high"] },
                    "timeout_s": { "type": "integer" },
                    "max_concurrent": { "type": "integer" },
                    "params": { "type": "array", "items": { "$ref": "#/components/schemas/Param" } },
                    "who_may_run": { "type": "array", "items": { "type": "string" } },
                    "channels": { "type": "array", "items": { "type": "string" } },
                    "approval": {
                        "type": "object", "nullable": true,
                        "properties": {
                            "approvers": { "type": "array", "items": { "type": "string" } },
                            "quorum": { "type": "integer" }, "expires_s": { "type": "integer" },
                            "channel": { "type": "string", "nullable": true }, "self_approval": { "type": "boolean" }
                        }
                    },
                    "schedules": { "type": "array", "items": {
                        "type": "object",
                        "properties": {
                            "name": { "type": "string" }, "cron": { "type": "string" }, "timezone": { "type": "string" },
                            "args": { "type": "object", "additionalProperties": true },
                            "post_to": { "type": "array", "items": { "type": "string" } },
                            "next": { "type": "array", "items": { "type": "string", "format": "date-time" } }
                        }
                    } },
                    "may_run": { "type": "boolean", "description": "whether you may ask for it from the web/API" },
                    "may_run_refused": { "type": "string", "nullable": true }
                }
            },
            "ScriptList": {
                "type": "object", "required": ["scripts"],
                "properties": { "scripts": { "type": "array", "items": { "$ref": "#/components/schemas/Script" } } }
            }
        }
    })
}
