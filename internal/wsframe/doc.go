// Package wsframe writes and parses WebSocket frame headers (RFC 6455
// section 5.2): the unmasked server frames the ws package sends, the masked
// client frames tests and the load tool send, and the headers the ws
// package's write seam checks in what the websocket library writes. It
// writes whole messages only (FIN set).
package wsframe
