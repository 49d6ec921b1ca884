// Package wsframe writes WebSocket frames (RFC 6455 section 5.2): the
// unmasked server frames the ws package sends, and the masked client frames
// tests and the load tool send. It frames whole messages only (FIN set).
package wsframe
