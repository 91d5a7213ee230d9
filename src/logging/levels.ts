// The error log's levels, least severe first (Gunicorn's): the logger's
// thresholds and the loglevel setting's choices are both this list.
export const LEVELS = ['debug', 'info', 'warning', 'error', 'critical'] as const;
export type Level = (typeof LEVELS)[number];
