//! One module per family of events; each handler checks everything before it changes anything.

mod funds;
mod prices;
mod trading;
mod venue_events;
