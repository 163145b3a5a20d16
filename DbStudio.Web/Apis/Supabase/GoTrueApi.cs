// supabase-js's auth client (auth-js 2.x) unchanged (DESIGN §5): /db/{id}/supabase/auth/v1/… speaks GoTrue's routes and
// JSON — /signup, /token?grant_type=password|refresh_token, /user, /logout — over the same end users, sessions and
// tokens as /db/{id}/auth (Core/Auth/EndUserAuth), with the same rate limit. Errors take GoTrue's two shapes: {code,
// message} when the client sends X-Supabase-Api-Version 2024-01-01 or later (auth-js does; echoed back), else the
// older {code: status, error_code, msg}.
using System.Globalization;
using System.Text.Json;
using DbStudio.Core.Auth;
using DbStudio.Core.Projects;
using Microsoft.AspNetCore.Http.Features;

namespace DbStudio.Web.Apis.Supabase;

public static class GoTrueApi
{
    public const string ApiVersionHeader = "X-Supabase-Api-Version";
    private const string ApiVersion20240101 = "2024-01-01";
    private const int MaxBodyBytes = 64 * 1024;

    public static IEndpointRouteBuilder MapGoTrueApi(this IEndpointRouteBuilder app)
    {
        var g = app.MapGroup("/db/{id}/supabase/auth/v1").RequireCors(RestApi.CorsPolicy).WithTags("supabase-js auth").DisableAntiforgery();
        g.MapPost("/signup", Signup).RequireRateLimiting(EndUserAuthApi.RateLimitPolicy);
        g.MapPost("/token", Token).RequireRateLimiting(EndUserAuthApi.RateLimitPolicy);
        g.MapGet("/user", GetUser);
        g.MapMethods("/user", ["PUT"], UpdateUser);
        g.MapPost("/logout", Logout);
        g.MapGet("/settings", Settings);
        g.MapGet("/health", Health);
        // Everything else GoTrue has (magic links, OTP, OAuth, MFA, admin): a clear 404 in GoTrue's shape.
        g.MapMethods("/{**rest}", ["GET", "POST", "PUT", "PATCH", "DELETE"], NotSupported);
        return app;
    }

    private static async Task<IResult> Signup(HttpContext ctx, string id, Credentials keys, EndUserAuth auth, TimeProvider clock)
    {
        if (!await HasProjectKey(ctx, id, keys)) return NoApiKey(ctx);
        var (body, bad) = await ReadBodyAsync(ctx);
        if (bad is not null) return bad;
        if (body!.Value.TryGetProperty("data", out var data) && data.ValueKind == JsonValueKind.Object && data.EnumerateObject().Any())
            return Error(ctx, 400, "validation_failed",
                "User metadata (options.data) is not stored by DbStudio; keep profile data in a table of your own, keyed by the user's id");
        if (!body.Value.TryGetProperty("email", out _) && body.Value.TryGetProperty("phone", out _))
            return Error(ctx, 400, "phone_provider_disabled", "Phone signups are disabled");
        return await Run(ctx, async () => SessionJson(await auth.SignupAsync(id, Text(body.Value, "email"), Text(body.Value, "password"), ctx.RequestAborted), clock));
    }

    private static async Task<IResult> Token(HttpContext ctx, string id, Credentials keys, EndUserAuth auth, TimeProvider clock)
    {
        if (!await HasProjectKey(ctx, id, keys)) return NoApiKey(ctx);
        var grant = ctx.Request.Query["grant_type"].FirstOrDefault();
        if (grant is not ("password" or "refresh_token"))
            return Error(ctx, 400, "invalid_credentials", "unsupported_grant_type");
        var (body, bad) = await ReadBodyAsync(ctx);
        if (bad is not null) return bad;
        if (grant == "password")
        {
            if (!body!.Value.TryGetProperty("email", out _) && body.Value.TryGetProperty("phone", out _))
                return Error(ctx, 400, "phone_provider_disabled", "Phone logins are disabled");
            return await Run(ctx, async () => SessionJson(await auth.LoginAsync(id, Text(body.Value, "email"), Text(body.Value, "password"), ctx.RequestAborted), clock));
        }
        var refresh = Text(body!.Value, "refresh_token");
        if (string.IsNullOrEmpty(refresh)) return Error(ctx, 400, "validation_failed", "refresh_token required");
        return await Run(ctx, async () => SessionJson(await auth.RefreshAsync(id, refresh, ctx.RequestAborted), clock));
    }

    private static async Task<IResult> GetUser(HttpContext ctx, string id, Credentials keys, EndUserAuth auth)
    {
        if (!await HasProjectKey(ctx, id, keys)) return NoApiKey(ctx);
        var (principal, token, error) = await SessionOf(ctx, id, keys, auth);
        if (error is not null) return error;
        var user = await auth.GetUserAsync(id, principal!.UserId, ctx.RequestAborted);
        return user is null ? Error(ctx, 403, "user_not_found", "User from sub claim in JWT does not exist") : Results.Json(UserJson(user));
    }

    private static async Task<IResult> UpdateUser(HttpContext ctx, string id, Credentials keys, EndUserAuth auth)
    {
        if (!await HasProjectKey(ctx, id, keys)) return NoApiKey(ctx);
        var (_, _, error) = await SessionOf(ctx, id, keys, auth);
        return error ?? Error(ctx, 422, "not_supported",
            "Changing a user's email, password or metadata is not supported by DbStudio yet; the project owner manages end users in the panel");
    }

    /// <summary>GoTrue's scopes: global (default: every session of the user), local (this one), others (all but this one).</summary>
    private static async Task<IResult> Logout(HttpContext ctx, string id, Credentials keys, EndUserAuth auth)
    {
        if (!await HasProjectKey(ctx, id, keys)) return NoApiKey(ctx);
        var scope = ctx.Request.Query["scope"].FirstOrDefault() ?? "global";
        if (scope is not ("" or "global" or "local" or "others"))
            return Error(ctx, 400, "validation_failed", $"Unsupported logout scope \"{scope}\"");
        var (principal, token, error) = await SessionOf(ctx, id, keys, auth);
        if (error is not null) return error;
        if (scope == "local") await auth.LogoutAsync(token!, ctx.RequestAborted);
        else await auth.LogoutUserAsync(id, principal!.UserId, scope == "others" ? token : null, ctx.RequestAborted);
        return Results.NoContent();
    }

    private static async Task<IResult> Settings(HttpContext ctx, string id, Credentials keys) =>
        !await HasProjectKey(ctx, id, keys) ? NoApiKey(ctx) : Results.Json(new
        {
            external = new { email = true, phone = false, anonymous_users = false },
            disable_signup = false, mailer_autoconfirm = true, phone_autoconfirm = false, sms_provider = "", saml_enabled = false,
        });

    private static IResult Health() => Results.Json(new { version = "dbstudio", name = "GoTrue", description = "DbStudio end-user auth in GoTrue's dialect" });

    private static IResult NotSupported(HttpContext ctx, string rest) =>
        Error(ctx, 404, "not_found", $"/auth/v1/{rest} is not supported by DbStudio: sign up and sign in with email and password");

    // ---- shapes ----------------------------------------------------------------------------------------------

    /// <summary>A GoTrue session: auth-js keeps it as it is (expires_at in Unix seconds).</summary>
    private static IResult SessionJson(Session s, TimeProvider clock) => Results.Json(new
    {
        access_token = s.access_token,
        token_type = s.token_type,
        expires_in = s.expires_in,
        expires_at = clock.GetUtcNow().AddSeconds(s.expires_in).ToUnixTimeSeconds(),
        refresh_token = s.refresh_token,
        user = UserJson(s.user),
    });

    /// <summary>GoTrue's user object. Accounts are confirmed at signup (no mail server); the project role is app_metadata.role.</summary>
    internal static object UserJson(EndUserInfo u)
    {
        var at = u.created_at.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", CultureInfo.InvariantCulture);
        return new
        {
            id = u.id,
            aud = "authenticated",
            role = "authenticated",
            email = u.email,
            email_confirmed_at = at,
            phone = "",
            confirmed_at = at,
            app_metadata = new { provider = "email", providers = new[] { "email" }, role = u.role },
            user_metadata = new { },
            identities = Array.Empty<object>(),
            created_at = at,
            updated_at = at,
            is_anonymous = false,
        };
    }

    /// <summary>GoTrue's error JSON in the shape the client's API version asks for.</summary>
    internal static IResult Error(HttpContext ctx, int status, string code, string message, string[]? weakPasswordReasons = null)
    {
        ctx.Response.Headers["x-sb-error-code"] = code;
        var requested = ctx.Request.Headers[ApiVersionHeader].FirstOrDefault();
        if (requested is not null && DateOnly.TryParseExact(requested, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var v)
            && v >= new DateOnly(2024, 1, 1))
        {
            ctx.Response.Headers[ApiVersionHeader] = ApiVersion20240101;
            return weakPasswordReasons is null
                ? Results.Json(new { code, message }, statusCode: status)
                : Results.Json(new { code, message, weak_password = new { reasons = weakPasswordReasons } }, statusCode: status);
        }
        return weakPasswordReasons is null
            ? Results.Json(new { code = status, error_code = code, msg = message }, statusCode: status)
            : Results.Json(new { code = status, error_code = code, msg = message, weak_password = new { reasons = weakPasswordReasons } }, statusCode: status);
    }

    /// <summary>EndUserAuth's refusals, as GoTrue words and numbers them.</summary>
    private static async Task<IResult> Run(HttpContext ctx, Func<Task<IResult>> action)
    {
        try { return await action(); }
        catch (AuthException e)
        {
            return e.Code switch
            {
                "invalid_credentials" => Error(ctx, 400, "invalid_credentials", "Invalid login credentials"),
                "refresh_token_not_found" => Error(ctx, 400, "refresh_token_not_found", "Invalid Refresh Token: Refresh Token Not Found"),
                "user_already_exists" => Error(ctx, 422, "user_already_exists", "User already registered"),
                "weak_password" => Error(ctx, 422, "weak_password", e.Message, ["length"]),
                "validation_failed" when e.Message.Contains("email", StringComparison.OrdinalIgnoreCase) =>
                    Error(ctx, 400, "validation_failed", "Unable to validate email address: invalid format"),
                _ => Error(ctx, e.Status, e.Code, e.Message),
            };
        }
    }

    // ---- requests --------------------------------------------------------------------------------------------

    private static async Task<(JsonElement? Body, IResult? Error)> ReadBodyAsync(HttpContext ctx)
    {
        if (ctx.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size) size.MaxRequestBodySize = MaxBodyBytes;
        if (ctx.Request.ContentLength > MaxBodyBytes) return (null, Error(ctx, 413, "request_too_large", $"The request body is larger than {MaxBodyBytes:N0} bytes"));
        try
        {
            using var doc = await JsonDocument.ParseAsync(ctx.Request.Body, default, ctx.RequestAborted);
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                return (null, Error(ctx, 400, "bad_json", "Could not parse request body as JSON: a JSON object is required"));
            return (doc.RootElement.Clone(), null);
        }
        catch (JsonException e) { return (null, Error(ctx, 400, "bad_json", "Could not parse request body as JSON: " + e.Message)); }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            return (null, Error(ctx, 413, "request_too_large", $"The request body is larger than {MaxBodyBytes:N0} bytes"));
        }
    }

    /// <summary>A string property, or null (a number or object where a string belongs counts as missing).</summary>
    private static string? Text(JsonElement body, string name) =>
        body.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    /// <summary>supabase-js sends the project key as apikey on every call (and as the bearer until someone signs in).</summary>
    private static async Task<bool> HasProjectKey(HttpContext ctx, string id, Credentials keys)
    {
        var key = ctx.Request.Headers["apikey"].FirstOrDefault();
        if (string.IsNullOrEmpty(key)) key = RestApi.BearerToken(ctx);
        return ProjectNaming.IsValidId(id) && await keys.IsProjectKeyAsync(id, key, ctx.RequestAborted);
    }

    private static IResult NoApiKey(HttpContext ctx) =>
        Error(ctx, 401, "no_api_key", "No valid API key for this project was found in the request (send the ANON key in the apikey header)");

    /// <summary>The signed-in end user the bearer token stands for, or GoTrue's error.</summary>
    private static async Task<(SessionPrincipal? Principal, string? Token, IResult? Error)> SessionOf(HttpContext ctx, string id,
        Credentials keys, EndUserAuth auth)
    {
        var token = RestApi.BearerToken(ctx);
        if (string.IsNullOrEmpty(token) || await keys.IsProjectKeyAsync(id, token, ctx.RequestAborted))
            return (null, null, Error(ctx, 401, "no_authorization", "This endpoint requires a valid Bearer token"));
        var principal = token.Length > 200 ? null : await auth.ValidateAsync(token, ctx.RequestAborted);
        if (principal is null || principal.ProjectId != id)
            return (null, null, Error(ctx, 403, "session_not_found", "Session from the access token does not exist: it ended (sign out, refresh) or expired"));
        return (principal, token, null);
    }
}
