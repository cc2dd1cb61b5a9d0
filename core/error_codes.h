/* Runnel's error codes: the one table that the server's enum
 * (runnel::ErrorCode, core/status.h), the client library's public enum
 * (runnel::client::ErrorCode, runnel/types.h) and both name functions are
 * generated from. The numbers are part of the wire protocol
 * (proto/PROTOCOL.md, "Errors") and of the admin API: never renumber, only
 * append. Installed with librunnel as <runnel/error_codes.h>, so it includes
 * nothing.
 *
 * X(Name, number, "name used in logs, JSON bodies and the CLI")
 */
#ifndef RUNNEL_ERROR_CODES_H_
#define RUNNEL_ERROR_CODES_H_

#define RUNNEL_ERROR_CODES(X)                                                                                          \
  X(kOk, 0, "ok")                                                                                                      \
  X(kInternal, 1, "internal")                                                                                          \
  X(kInvalidArgument, 2, "invalid_argument")                                                                           \
  X(kNotFound, 3, "not_found")                                                                                         \
  X(kAlreadyExists, 4, "already_exists")                                                                               \
  X(kOverloaded, 5, "overloaded")                                                                                      \
  X(kUnavailable, 6, "unavailable") /* Client: a request lost with its connection, effect unknown. */                  \
  X(kShuttingDown, 7, "shutting_down")                                                                                 \
  X(kIoError, 8, "io_error")                                                                                           \
  X(kNoSpace, 9, "no_space")                                                                                           \
  X(kUnsupported, 10, "unsupported")                                                                                   \
  X(kTooLarge, 11, "too_large")                                                                                        \
  X(kTimeout, 12, "timeout")                                                                                           \
  X(kCorrupt, 13, "corrupt")                             /* Bytes fail a checksum or are not what they claim to be. */ \
  X(kSeqNumMismatch, 14, "seq_num_mismatch")             /* match_seq_num is not the tail; detail() = tail. */         \
  X(kFencingTokenMismatch, 15, "fencing_token_mismatch") /* Fenced with another token. */                              \
  X(kOutOfRange, 16, "out_of_range")                     /* A read starts beyond the tail; detail() = tail. */         \
  X(kStreamSealed, 17, "stream_sealed")                  /* Read-only forever. */                                      \
  X(kUnauthenticated, 18, "unauthenticated")             /* Missing or invalid access token. */                        \
  X(kPermissionDenied, 19, "permission_denied")          /* The token does not allow this. */                          \
  X(kThrottled, 20, "throttled")                         /* Over the token's rate; detail() = ms to wait. */

#endif /* RUNNEL_ERROR_CODES_H_ */
