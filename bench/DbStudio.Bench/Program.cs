// DbStudio benchmarks. Each prints its figures next to a baseline measured in the same run.
//   dotnet run -c Release --project bench/DbStudio.Bench -- provisioning [n]
using DbStudio.Bench;

var what = args.FirstOrDefault() ?? "provisioning";
switch (what)
{
    case "provisioning":
        await ProvisioningBench.RunAsync(args.Length > 1 ? int.Parse(args[1]) : 100);
        return 0;
    default:
        Console.Error.WriteLine($"unknown benchmark '{what}'. Known: provisioning");
        return 2;
}
