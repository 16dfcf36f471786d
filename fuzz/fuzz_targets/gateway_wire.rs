//! The gateway's request decoding on arbitrary bytes: gRPC framing in arbitrary chunks, routing
//! reads, the user-id rewrite and the Config redaction never panic, and a rewritten message
//! reads back with the gateway's user and the same session id.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sk8::gateway::wire::{self, FrameReader};

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let mut reader = FrameReader::new(1 << 16);
    for piece in stream.chunks(usize::from(chunk.max(1))) {
        reader.push(piece);
        while let Ok(Some(frame)) = reader.next_frame() {
            check_message(&frame.message);
        }
    }
    check_message(stream);
});

fn check_message(message: &[u8]) {
    let Ok(routing) = wire::routing(message, Some(6)) else {
        return;
    };
    if let Ok(rewritten) = wire::with_user_id(message, "gateway-user") {
        let again = wire::routing(&rewritten, Some(6)).expect("a rewritten message reads back");
        assert_eq!(again.session_id, routing.session_id);
        assert_eq!(again.operation_id, routing.operation_id);
    }
    let _ = wire::redact_conf(message, "spark.connect.authenticate.token");
}
