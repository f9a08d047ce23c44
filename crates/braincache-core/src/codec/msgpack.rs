//! MessagePack without rmp-serde's reader and writer: [`de`], the deserializer of
//! [`MsgPack::decode`](crate::MsgPack), and [`ser`], the serializer of
//! [`MsgPack::encode`](crate::MsgPack). Both follow rmp-serde 1.3 under the nested-`None`
//! adapter exactly (same values read, same bytes written); rmp-serde stays the reference they
//! are tested against, and serves `MsgPack::to_json`.

pub(super) mod de;
pub(super) mod ser;

#[cfg(test)]
pub(super) mod tests;
