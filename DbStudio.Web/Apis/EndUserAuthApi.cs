// End-user auth per project (DESIGN §3): /db/{id}/auth/… — the project's ANON key (or DB_API_KEY) must
// accompany every call; signup, login and refresh are rate limited per client address and project.
using DbStudio.Core.Auth;
using DbStudio.Core.Rest;
using Microsoft.AspNetCore.RateLimiting;

namespace DbStudio.Web.Apis;

public sealed record EmailPassword(string? Email, string? Password);
public sealed record RefreshRequest(string? refresh_token);
public sealed record RoleRequest(string? Role);

public static class EndUserAuthApi
{
    public const string RateLimitPolicy = "end-user-auth";

    public static IEndpointRouteBuilder MapEndUserAuthApi(this IEndpointRouteBuilder app)
    {
        var g = app.MapGroup("/db/{id}/auth").RequireCors(RestApi.CorsPolicy).WithTags("End-user auth").DisableAntiforgery()
            .WithStrictJson(p => Error(400, new RestError("validation_failed", p.Message, null, null)));
        g.MapPost("/signup", Signup).RequireRateLimiting(RateLimitPolicy);
        g.MapPost("/login", Login).RequireRateLimiting(RateLimitPolicy);
        g.MapPost("/refresh", Refresh).RequireRateLimiting(RateLimitPolicy);
        g.MapPost("/logout", Logout);
        g.MapGet("/user", CurrentUser);
        g.MapPatch("/users/{userId:guid}", SetRole);
        return app;
    }

    private static async Task<IResult> Signup(HttpContext ctx, string id, Strict<EmailPassword> body, Credentials keys, EndUserAuth auth) =>
        !await HasProjectKey(ctx, id, keys) ? Error(401, RestApi.Unauthorized())
        : await Run(async () => Results.Json(await auth.SignupAsync(id, body.Value.Email, body.Value.Password, ctx.RequestAborted), statusCode: 201));

    private static async Task<IResult> Login(HttpContext ctx, string id, Strict<EmailPassword> body, Credentials keys, EndUserAuth auth) =>
        !await HasProjectKey(ctx, id, keys) ? Error(401, RestApi.Unauthorized())
        : await Run(async () => Results.Json(await auth.LoginAsync(id, body.Value.Email, body.Value.Password, ctx.RequestAborted)));

    private static async Task<IResult> Refresh(HttpContext ctx, string id, Strict<RefreshRequest> body, Credentials keys, EndUserAuth auth) =>
        !await HasProjectKey(ctx, id, keys) ? Error(401, RestApi.Unauthorized())
        : await Run(async () => Results.Json(await auth.RefreshAsync(id, body.Value.refresh_token, ctx.RequestAborted)));

    private static async Task<IResult> Logout(HttpContext ctx, string id, Credentials keys, EndUserAuth auth)
    {
        var token = RestApi.BearerToken(ctx);
        if (token is null || await auth.ValidateAsync(token, ctx.RequestAborted) is not { } p || p.ProjectId != id)
            return Error(401, RestApi.Unauthorized());
        await auth.LogoutAsync(token, ctx.RequestAborted);
        return Results.NoContent();
    }

    private static async Task<IResult> CurrentUser(HttpContext ctx, string id, EndUserAuth auth)
    {
        var token = RestApi.BearerToken(ctx);
        if (token is null || await auth.ValidateAsync(token, ctx.RequestAborted) is not { } p || p.ProjectId != id)
            return Error(401, RestApi.Unauthorized());
        var user = await auth.GetUserAsync(id, p.UserId, ctx.RequestAborted);
        return user is null ? Error(401, RestApi.Unauthorized()) : Results.Json(user);
    }

    /// <summary>The project owner (DB_API_KEY) sets an end user's role: user or admin.</summary>
    private static async Task<IResult> SetRole(HttpContext ctx, string id, Guid userId, Strict<RoleRequest> body, Credentials keys, EndUserAuth auth)
    {
        var caller = await RestApi.ResolveCallerAsync(ctx, id, keys);
        if (caller is null) return Error(401, RestApi.Unauthorized());
        if (caller.Kind != CallerKind.Admin)
            return Error(403, new RestError("42501", "Only the DB_API_KEY may change roles", null, "Send Authorization: Bearer dak_…"));
        return await Run(async () => await auth.SetRoleAsync(id, userId, body.Value.Role ?? "", ctx.RequestAborted) is { } u
            ? Results.Json(u)
            : Error(404, new RestError("user_not_found", "No such user in this project", null, null)));
    }

    private static async Task<bool> HasProjectKey(HttpContext ctx, string id, Credentials keys)
    {
        var key = ctx.Request.Headers["apikey"].FirstOrDefault();
        if (string.IsNullOrEmpty(key)) key = RestApi.BearerToken(ctx);
        return Core.Projects.ProjectNaming.IsValidId(id) && await keys.IsProjectKeyAsync(id, key, ctx.RequestAborted);
    }

    private static async Task<IResult> Run(Func<Task<IResult>> action)
    {
        try { return await action(); }
        catch (AuthException e) { return Error(e.Status, new RestError(e.Code, e.Message, null, null)); }
    }

    private static IResult Error(int status, RestError error) => Results.Json(error, statusCode: status);
}
