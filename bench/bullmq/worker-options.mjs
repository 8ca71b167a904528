// Retries as callbackd's default schedule roughly does: 6 attempts, backing off from 30 s.
export const jobOptions = { attempts: 6, backoff: { type: 'exponential', delay: 30000 },
                            removeOnComplete: true };
