// Browser sign-in for the panel: form posts from the static account pages set Identity's cookie. The form shares its
// sign-in throttle (LoginThrottle) and its registration (PlatformRegistration) with POST /api/auth/login|register.
using DbStudio.Core.Auth;
using DbStudio.Core.Platform;
using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore.Mvc;

namespace DbStudio.Web.Apis;

public static class AccountEndpoints
{
    public static IEndpointRouteBuilder MapAccountEndpoints(this IEndpointRouteBuilder app)
    {
        var g = app.MapGroup("/account").WithTags("Browser accounts");
        g.MapPost("/login", Login);
        g.MapPost("/register", Register);
        g.MapPost("/logout", Logout);
        return app;
    }

    private static async Task<IResult> Login([FromForm] string? email, [FromForm] string? password, [FromForm] string? returnUrl,
        HttpContext ctx, SignInManager<PlatformUser> signIn, LoginThrottle throttle)
    {
        var back = SafeReturn(returnUrl);
        var attempt = throttle.Begin(ctx.Connection.RemoteIpAddress, email);
        if (!attempt.Allowed)
            return Results.LocalRedirect(
                $"/account/login?error=wait&retry={PlatformAuthApi.RetryAfterSeconds(attempt.RetryAfter)}&returnUrl={Uri.EscapeDataString(back)}");
        var result = await signIn.PasswordSignInAsync(email ?? "", password ?? "", isPersistent: true, lockoutOnFailure: false);
        if (!result.Succeeded) return Results.LocalRedirect($"/account/login?error=1&returnUrl={Uri.EscapeDataString(back)}");
        attempt.Succeeded();
        return Results.LocalRedirect(back);
    }

    /// <summary>The same answer for a new email and a registered one: on to the sign-in page (no account enumeration).</summary>
    private static async Task<IResult> Register([FromForm] string? email, [FromForm] string? password,
        UserManager<PlatformUser> users, ILoggerFactory logs)
    {
        var (result, _) = await PlatformRegistration.RegisterAsync(users, email, password, logs);
        if (!result.Succeeded)
        {
            var why = string.Join(" ", result.Errors.Select(e => e.Description));
            return Results.LocalRedirect($"/account/register?error={Uri.EscapeDataString(why)}");
        }
        return Results.LocalRedirect("/account/login?registered=1");
    }

    private static async Task<IResult> Logout(SignInManager<PlatformUser> signIn)
    {
        await signIn.SignOutAsync();
        return Results.LocalRedirect("/");
    }

    /// <summary>
    /// Where to go after signing in: a path on this site, else the project list. Refuses what a browser would take
    /// elsewhere — "//host", "/\host" (browsers read "\" as "/"), absolute URLs — and control characters, the same
    /// rules as ASP.NET Core's IsLocalUrl, so LocalRedirect never throws (which answered 500).
    /// </summary>
    public static string SafeReturn(string? returnUrl)
    {
        if (string.IsNullOrEmpty(returnUrl) || returnUrl[0] != '/') return "/projects";
        if (returnUrl.Length > 1 && returnUrl[1] is '/' or '\\') return "/projects";
        if (returnUrl.Any(char.IsControl)) return "/projects";
        return returnUrl;
    }
}
