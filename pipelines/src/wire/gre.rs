//! TODO(foundation): not written yet.
