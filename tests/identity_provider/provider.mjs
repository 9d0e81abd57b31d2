// The OpenID provider of the tests: oidc-provider, over plain http on 127.0.0.1.
//
//   node provider.mjs config.json
//
// config.json: {"issuer": "http://127.0.0.1:PROXY", "port": N (0: any free port),
//               "clients": [{"client_id", "client_secret", "redirect_uris": [...],
//                            "token_endpoint_auth_method"?}],
//               "jwks": {"keys": [private RSA JWK with kid]}}
// Prints "READY <port>" on stdout once listening.
//
// Sign-in: the authorization endpoint redirects to /interaction/<uid>, a plain HTML form
// (fields `login` and `password`, any password). The account's id -- and so the ID token's
// `sub` -- is "sub-" + login; its email is the login itself (email_verified true) and its
// name the part of the login before "@". Consent is given on the user's behalf (a corporate
// provider does not ask employees), so the form is the only page.
import { readFileSync } from 'node:fs';

import Provider, { errors } from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const SCOPES = ['openid', 'email', 'profile'];
const port = new URL(config.issuer).port || '80';

function account(accountId) {
  const login = accountId.startsWith('sub-') ? accountId.slice(4) : accountId;
  return {
    accountId,
    async claims() {
      return {
        sub: accountId,
        email: login,
        email_verified: true,
        name: login.split('@')[0],
      };
    },
  };
}

const provider = new Provider(config.issuer, {
  clients: config.clients.map((client) => ({
    client_id: client.client_id,
    client_secret: client.client_secret,
    redirect_uris: client.redirect_uris,
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: client.token_endpoint_auth_method || 'client_secret_basic',
    id_token_signed_response_alg: 'RS256',
  })),
  jwks: config.jwks,
  findAccount: async (_ctx, id) => account(id),
  scopes: SCOPES,
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
  },
  // The ID token carries the scopes' claims (the default puts them in userinfo only when an
  // access token is issued alongside, as in the code flow).
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  responseTypes: ['code'],
  features: {
    devInteractions: { enabled: false },
    introspection: { enabled: false },
    revocation: { enabled: false },
  },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  // Consent given on the user's behalf: a grant of the requested openid scopes.
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId
      || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) {
      const found = await ctx.oidc.provider.Grant.find(grantId);
      if (found) return found;
    }
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope(SCOPES.join(' '));
    await grant.save();
    return grant;
  },
  // Cookies named per provider: every provider of a test run lives on 127.0.0.1, and cookies
  // do not tell ports apart. Not `secure`: oidc-provider marks them so only over https.
  cookies: {
    keys: [Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString('base64url')],
    names: {
      session: `idp_session_${port}`,
      interaction: `idp_interaction_${port}`,
      resume: `idp_interaction_resume_${port}`,
    },
  },
  ttl: {
    AccessToken: 3600,
    AuthorizationCode: 120,
    IdToken: 3600,
    Interaction: 3600,
    Session: 3600,
    Grant: 3600,
  },
  renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = `<!DOCTYPE html><title>oops</title><h1>${escape(out.error)}</h1><p>${escape(out.error_description || '')}</p>`;
  },
});
provider.proxy = false;

function escape(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

async function formBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function loginPage(uid, params, message) {
  const hint = params.login_hint ? ` value="${escape(params.login_hint)}"` : '';
  return `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Sign-in</title></head><body>
<h1>Sign-in to ${escape(params.client_id)}</h1>
${message ? `<p class="error">${escape(message)}</p>` : ''}
<form method="post" action="/interaction/${escape(uid)}/login">
  <input type="text" name="login" placeholder="email"${hint} required>
  <input type="password" name="password" placeholder="any password" required>
  <button type="submit">Sign-in</button>
</form>
<form method="post" action="/interaction/${escape(uid)}/abort"><button type="submit">Cancel</button></form>
</body></html>`;
}

provider.use(async (ctx, next) => {
  const match = /^\/interaction\/([^/]+)(?:\/(login|abort))?$/.exec(ctx.path);
  if (!match) return next();
  ctx.set('cache-control', 'no-store');
  const [, uid, action] = match;
  try {
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    if (details.uid !== uid) throw new errors.SessionNotFound('interaction mismatch');
    if (!action && ctx.method === 'GET') {
      ctx.type = 'html';
      ctx.body = loginPage(uid, details.params);
      return undefined;
    }
    if (action === 'abort' && ctx.method === 'POST') {
      const to = await provider.interactionResult(ctx.req, ctx.res, {
        error: 'access_denied', error_description: 'End-User aborted interaction',
      }, { mergeWithLastSubmission: false });
      ctx.status = 303;
      ctx.redirect(to);
      return undefined;
    }
    if (action === 'login' && ctx.method === 'POST') {
      const login = ((await formBody(ctx.req)).get('login') || '').trim();
      if (!login) {
        ctx.status = 400;
        ctx.type = 'html';
        ctx.body = loginPage(uid, details.params, 'a login is needed');
        return undefined;
      }
      const to = await provider.interactionResult(ctx.req, ctx.res, {
        login: { accountId: `sub-${login}` },
      }, { mergeWithLastSubmission: false });
      ctx.status = 303;
      ctx.redirect(to);
      return undefined;
    }
    ctx.status = 405;
    return undefined;
  } catch (error) {
    ctx.status = error.statusCode || 400;
    ctx.type = 'html';
    ctx.body = `<!DOCTYPE html><title>oops</title><h1>${escape(error.error || 'error')}</h1><p>${escape(error.error_description || error.message)}</p>`;
    return undefined;
  }
});

provider.on('server_error', (_ctx, error) => console.error('server_error', error));

const server = provider.listen(config.port || 0, '127.0.0.1', () => {
  process.stdout.write(`READY ${server.address().port}\n`);
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => { server.close(() => process.exit(0)); server.closeAllConnections(); });
}
