//! MessagePack read without rmp-serde's reader: [`de`], the deserializer of
//! [`MsgPack::decode`](crate::MsgPack).

pub(super) mod de;

#[cfg(test)]
mod tests;
