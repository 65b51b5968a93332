//! The lines the status bar shows: what went wrong, what was written, or a calm note, each with its
//! kind (the bar colours it by the kind, never by the text).

use std::fmt;

/// What a message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// Something failed or was refused: the user has something to do.
    Error,
    /// A file was written (an export, a detector).
    Done,
    /// Worth knowing, nothing to fix (a results file whose images are not on this machine).
    Note,
}

/// One line of the status bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub kind: MessageKind,
    pub text: String,
}

impl std::ops::Deref for Message {
    type Target = str;

    fn deref(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The messages of the session, oldest first (the bar shows the latest; the rest on hover).
#[derive(Debug, Clone, Default)]
pub struct Messages(Vec<Message>);

impl Messages {
    /// Adds an error (what failed, and what to do).
    pub fn push(&mut self, text: impl Into<String>) {
        self.add(MessageKind::Error, text.into());
    }

    /// Adds the news of a file written.
    pub fn done(&mut self, text: impl Into<String>) {
        self.add(MessageKind::Done, text.into());
    }

    /// Adds a calm note.
    pub fn note(&mut self, text: impl Into<String>) {
        self.add(MessageKind::Note, text.into());
    }

    pub fn add(&mut self, kind: MessageKind, text: String) {
        self.0.push(Message { kind, text });
    }

    /// Adds a message unless it is the latest already (a check made on every frame says it once).
    pub fn add_once(&mut self, kind: MessageKind, text: String) {
        if self.0.last().is_none_or(|m| m.kind != kind || m.text != text) {
            self.add(kind, text);
        }
    }

    pub fn last(&self) -> Option<&Message> {
        self.0.last()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Message> {
        self.0.iter()
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_kept_and_a_repeated_check_is_said_once() {
        let mut messages = Messages::default();
        messages.add_once(MessageKind::Error, "export failed: disk full".into());
        messages.add_once(MessageKind::Error, "export failed: disk full".into());
        messages.done("wrote a.png");
        messages.note("no images here");
        let kinds: Vec<MessageKind> = messages.iter().map(|m| m.kind).collect();
        assert_eq!(kinds, [MessageKind::Error, MessageKind::Done, MessageKind::Note]);
        assert!(messages.last().is_some_and(|m| m.starts_with("no images")));
    }
}
