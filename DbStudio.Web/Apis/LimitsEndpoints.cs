// How the platform's own limits (Core/Limits/PlatformLimits) answer over HTTP: 429 with a truthful Retry-After or 403,
// each with error JSON naming the limit. Registration (POST /api/auth/register and the form's POST /account/register)
// is checked before the endpoint runs, whatever endpoint serves it; project creation where ProjectService refuses it.
using DbStudio.Core.Limits;

namespace DbStudio.Web.Apis;

public static class LimitsEndpoints
{
    /// <summary>The error JSON of a refused request: {code, message, limit[, retryAfter]} (retryAfter in seconds).</summary>
    public static IResult Refusal(HttpContext ctx, PlatformLimitException e)
    {
        if (e.RetryAfterSeconds is int seconds) ctx.Response.Headers.RetryAfter = seconds.ToString();
        return Results.Json(new { code = e.Code, message = e.Message, limit = e.Limit, retryAfter = e.RetryAfterSeconds },
            statusCode: e.Status);
    }

    /// <summary>Endpoint filter: a PlatformLimitException from the handler becomes its 403/429 answer.</summary>
    public static async ValueTask<object?> RefusedByLimits(EndpointFilterInvocationContext ctx, EndpointFilterDelegate next)
    {
        try { return await next(ctx); }
        catch (PlatformLimitException e) { return Refusal(ctx.HttpContext, e); }
    }

    public static IApplicationBuilder UseRegistrationLimit(this IApplicationBuilder app) => app.Use(async (ctx, next) =>
    {
        var path = ctx.Request.Path;
        var api = path.Equals("/api/auth/register", StringComparison.OrdinalIgnoreCase);
        if (!HttpMethods.IsPost(ctx.Request.Method) || !(api || path.Equals("/account/register", StringComparison.OrdinalIgnoreCase)))
        {
            await next(ctx);
            return;
        }
        try
        {
            ctx.RequestServices.GetRequiredService<PlatformLimits>().CheckRegistration(ctx.Connection.RemoteIpAddress?.ToString() ?? "");
        }
        catch (PlatformLimitException e)
        {
            if (api)
            {
                await Refusal(ctx, e).ExecuteAsync(ctx);
                return;
            }
            // The browser form: the same status and header, and a page a person can read.
            ctx.Response.StatusCode = e.Status;
            ctx.Response.Headers.RetryAfter = e.RetryAfterSeconds?.ToString();
            ctx.Response.ContentType = "text/html; charset=utf-8";
            await ctx.Response.WriteAsync($"""
                <!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Too many accounts · DbStudio</title>
                <link rel="stylesheet" href="/app.css"></head><body><main class="account-page"><h1>Too many accounts</h1>
                <p id="limit-message">{System.Net.WebUtility.HtmlEncode(e.Message)}</p>
                <p><a href="/account/login">Sign in</a> · <a href="/account/register">Back</a></p></main></body></html>
                """);
            return;
        }
        await next(ctx);
    });
}
