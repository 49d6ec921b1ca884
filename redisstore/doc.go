// Package redisstore is a [taskbridge.Store] in Redis, for several
// processes serving one application.
package redisstore
